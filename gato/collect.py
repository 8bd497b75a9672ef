"""Collect expert (or random) episodes into JAT shards: ``python -m gato.collect``.

Episode ``i`` of a task always uses seed ``base_seed + i``, whichever worker runs it, so a
collection is reproducible and can resume: episode indices already stored in complete shards
are skipped, and only the missing ones are collected (an interrupted run is resumed by running
the same command again). Each worker process writes its own shards atomically (gato/jat.py).
Killing the command (SIGKILL, SIGTERM or Ctrl-C) stops its workers too (gato/procs.py), so
no orphan goes on writing shards that a rerun would race.

After collecting, the task's ``metadata.json`` records returns, the expert return (paper's
windowed formula), the random policy's return measured now, success rate, the 80% filter and the
specs (gato/datasets.py). ``python -m gato.collect --suite default`` builds the default dataset
that ``make data`` makes; ``--suite quick`` a small one for demos and tests.
``--from-hub CONFIG[,CONFIG...|all]`` stores the Hugging Face JAT dataset's episodes instead,
with the same metadata (gato/collect_hub.py; ``make data-hub``).

Noise-injected collection (DART, GATO_SPEC.md section 9; gato/experts/noise.py): ``--noise SIGMA``
executes the expert's continuous action plus N(0, SIGMA^2) per dimension, clipped to the action
bounds; ``--epsilon P`` executes a uniformly random discrete action with probability P. Either way
the episode stores the expert's own action for every state reached, while rewards, success and
the next state follow the executed action, and the 80% filter ranks the executed returns. In a
suite, ``--noise`` applies to its continuous-action tasks and ``--epsilon`` to its discrete ones.
The noise is seeded by the episode's seed, recorded in metadata.json (``noise_sigma``,
``noise_epsilon``; None where the task's action kind does not take it), and a resumed collection
must ask for the same noise.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields

from gato import datasets as store
from gato.cli import add_debug_flag
from gato.collect_suites import SUITES
from gato.collect_workers import (
    CRASH_AT_EPISODE_ENV,
    CRASH_IN_WRITE_ENV,
    Job,
    chunks,
    default_env_fn,
    default_policy_fn,
    run_jobs,
    stored_shard_rows,
    stored_summaries,
    verify_stored_shards,
)
from gato.errors import OneLineParser, UserError, run_command
from gato.experts.noise import check_noise, noise_config
from gato.jat import remove_temporary_files
from gato.locks import folder_lock
from gato.specs import DiscreteSpec

__all__ = ["CRASH_AT_EPISODE_ENV", "CRASH_IN_WRITE_ENV", "SUITES", "collect_task", "main"]

RANDOM_SEED_OFFSET = 1_000_000  # random-policy episodes use seeds disjoint from collected ones


@dataclass
class CollectArgs:
    """Options of ``python -m gato.collect``."""

    task: str | None = field(
        default=None,
        metadata={
            "help": "task to collect (canonical name "
            "or JAT alias, e.g. cartpole.balance or metaworld-assembly)"
        },
    )
    suite: str | None = field(
        default=None,
        metadata={"help": f"collect a whole suite instead of one task: {', '.join(SUITES)}"},
    )
    episodes: int = field(
        default=100,
        metadata={
            "help": "episodes to have for the task "
            "(indices 0..N-1; already collected ones are skipped; a suite sets its own)"
        },
    )
    workers: int = field(default=2, metadata={"help": "worker processes"})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": f"data folder (default: ${store.DATA_ENV_VAR} or ./{store.DEFAULT_DATA_DIR})"
        },
    )
    seed: int = field(default=0, metadata={"help": "base seed: episode i uses seed + i"})
    policy: str = field(default="expert", metadata={"help": "expert | random: who acts"})
    shard_size: int = field(default=25, metadata={"help": "at most this many episodes per shard"})
    random_episodes: int = field(
        default=5,
        metadata={"help": "random-policy episodes measured for the random return (not stored)"},
    )
    max_steps: int | None = field(
        default=None,
        metadata={"help": "cap on agent steps per episode (default: the task's max_episode_steps)"},
    )
    noise: float = field(
        default=0.0,
        metadata={
            "help": "SIGMA: execute the expert's continuous action + N(0, SIGMA^2) per dimension, "
            "clipped to the action bounds, and store the expert's action (DART)"
        },
    )
    epsilon: float = field(
        default=0.0,
        metadata={
            "help": "P: execute a uniformly random discrete action with probability P, and "
            "store the expert's action (DART)"
        },
    )
    from_hub: str | None = field(
        default=None,
        metadata={
            "help": "CONFIG[,CONFIG...] or all: store the JAT dataset's episodes of these configs "
            "(e.g. atari-pong,mujoco-ant) instead of collecting (gato/collect_hub.py)"
        },
    )
    hub_path: str | None = field(
        default=None,
        metadata={
            "help": "with --from-hub: a local copy of the dataset, one folder per config "
            "(default: stream from the Hugging Face hub)"
        },
    )
    hub_split: str = field(default="train", metadata={"help": "with --from-hub: the split"})
    list: bool = field(default=False, metadata={"help": "list suites and tasks, then exit"})
    no_progress: bool = field(default=False, metadata={"help": "no progress bar"})


PROG = "python -m gato.collect"


_Parser = OneLineParser  # one line (exit 2), without the usage block


def parse_args(argv: Sequence[str] | None = None) -> CollectArgs:
    parser = _Parser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for f in fields(CollectArgs):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=f.metadata["help"])
        else:
            kind = {"int": int, "int | None": int, "float": float}.get(f.type, str)
            default = None if f.default is MISSING else f.default
            text = f.metadata["help"]
            if "default" not in text:
                text += f" (default: {default})"
            metavar = text.split(":")[0] if f.name in ("noise", "epsilon") else None
            parser.add_argument(flag, type=kind, default=default, help=text, metavar=metavar)
    add_debug_flag(parser)  # listed in --help; run_command reads and removes it
    values = vars(parser.parse_args(argv))
    values.pop("_debug", None)
    args = CollectArgs(**{k.replace("-", "_"): v for k, v in values.items()})
    chosen = [x is not None for x in (args.task, args.suite, args.from_hub)]
    if not args.list and sum(chosen) != 1:
        parser.error("give exactly one of --task, --suite or --from-hub (or --list)")
    if args.from_hub is None and args.hub_path is not None:
        parser.error("--hub-path goes with --from-hub")
    if args.from_hub is not None and (args.policy != "expert" or args.noise or args.epsilon):
        parser.error("--policy, --noise and --epsilon are for collecting, not with --from-hub")
    if args.suite is not None and args.suite not in SUITES:
        parser.error(f"unknown suite {args.suite!r}; suites: {', '.join(SUITES)}")
    if args.policy not in ("expert", "random"):
        parser.error(f"--policy must be expert or random, got {args.policy!r}")
    for name in ("episodes", "workers", "shard_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        check_noise(args.noise, args.epsilon)
    except ValueError as e:
        parser.error(f"--noise/--epsilon: {e}")
    if args.policy == "random" and (args.noise or args.epsilon):
        parser.error("--noise and --epsilon perturb the expert; not with --policy random")
    return args


# ------------------------------------------------------------------------------- a task


def collect_task(
    task_info,
    episodes: int,
    data_dir=None,
    seed: int = 0,
    policy: str = "expert",
    workers: int = 2,
    shard_size: int = 25,
    random_episodes: int = 5,
    max_steps: int | None = None,
    progress: bool = True,
    env_fn: Callable = default_env_fn,
    policy_fn: Callable = default_policy_fn,
    sigma: float = 0.0,
    epsilon: float = 0.0,
) -> dict:
    """Collect (or complete) episodes 0..N-1 of a task; write and return its metadata.

    ``sigma`` (continuous actions) or ``epsilon`` (discrete actions) turn on noise-injected
    collection (see the module and gato/experts/noise.py)."""
    noise = noise_config(task_info, policy, sigma, epsilon)
    folder = store.task_dir(task_info.name, data_dir)
    # One writer per task folder for the whole collection (gato/locks.py): a second one would
    # delete this one's temporary files and race it on shard names.
    with folder_lock(folder, "gato.collect"):
        remove_temporary_files(folder)  # leftovers of a crashed run: never complete shards
        cap = max_steps or task_info.max_episode_steps
        config = {
            "policy": policy,
            "base_seed": seed,
            "max_steps": cap,
            "random_seed_offset": RANDOM_SEED_OFFSET,
            **noise,
        }
        meta_path = folder / store.METADATA_NAME
        old = store.read_metadata(task_info.name, data_dir) if meta_path.is_file() else {}
        if old:  # data collected before noise existed was collected without it
            old = {**noise_config(task_info, "expert", 0.0, 0.0), **old}
        clash = {k: (old[k], v) for k, v in config.items() if k in old and old[k] != v}
        if clash:
            raise SystemExit(
                f"{folder} holds episodes collected with other settings "
                f"(stored, requested): {clash}; use another --data-dir or delete it"
            )
        if not old:  # marks the folder as in progress until the real metadata replaces it
            marker = {"task": task_info.name, "complete": False, **config}
            store.write_json_atomic(meta_path, marker)

        # Resume counts only verified shards: a damaged one is moved aside and recollected.
        verify_stored_shards(folder, old.get("shard_rows") or {})
        have = {s["episode_index"]: s for s in stored_summaries(folder)}
        bad = [i for i, s in have.items() if s["seed"] != seed + i]
        if bad:
            raise SystemExit(f"{folder}: episodes {bad[:5]} were collected with another base seed")
        todo = [i for i in range(episodes) if i not in have]
        if todo and old.get("complete"):  # until the new metadata describes the folder again
            store.write_json_atomic(meta_path, {**old, "complete": False})
        size = min(shard_size, max(1, math.ceil(len(todo) / workers)))
        common = dict(
            task_info=task_info,
            policy=policy,
            max_steps=cap,
            folder=str(folder),
            env_fn=env_fn,
            policy_fn=policy_fn,
        )
        jobs = [
            Job(
                "collect",
                indices=c,
                seeds=[seed + i for i in c],
                sigma=sigma,
                epsilon=epsilon,
                **common,
            )
            for c in chunks(todo, size)
        ]
        reuse_random = (
            old.get("random_returns")
            if len(old.get("random_returns") or []) == random_episodes
            else None
        )
        if random_episodes and reuse_random is None:
            r_idx = list(range(random_episodes))
            r_size = max(1, math.ceil(random_episodes / workers))
            jobs += [
                Job(
                    "random",
                    indices=c,
                    seeds=[seed + RANDOM_SEED_OFFSET + i for i in c],
                    **{**common, "policy": "random"},
                )
                for c in chunks(r_idx, r_size)
            ]
        if len(have):
            print(
                f"{task_info.name}: {len(have)} episodes already in {folder}, "
                f"{len(todo)} to collect",
                file=sys.stderr,
            )
        start = time.time()
        results = run_jobs(jobs, workers, progress, task_info.name)
        done = zip(jobs, results, strict=True)
        random_returns = reuse_random or [
            s["return"] for j, res in done if j.kind == "random" for s in res
        ]
        meta = store.summarize(task_info, stored_summaries(folder), random_returns, config)
        meta.update(
            complete=True,
            seconds=round(time.time() - start, 1),
            shard_rows=stored_shard_rows(folder),  # what resume verifies each shard against
        )
        store.write_json_atomic(meta_path, meta)
        return meta


def _describe(meta: dict) -> str:
    def fmt(x):
        return "n/a" if x is None else f"{x:.3g}"

    return (
        f"{meta['task']}: {meta['episodes']} episodes, expert {fmt(meta['expert_return'])}, "
        f"random {fmt(meta['random_return'])}, success {fmt(meta['success_rate'])}, "
        f"{meta['filtered_episodes']} pass the 80% filter ({meta['seconds']} s)"
        + (f", noise sigma {meta['noise_sigma']}" if meta.get("noise_sigma") else "")
        + (f", epsilon {meta['noise_epsilon']}" if meta.get("noise_epsilon") else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command; a mistake in its input is a UserError (one line, exit 2 via run_command)."""
    args = parse_args(argv)
    from gato.envs import get_task, list_tasks

    if args.list:
        for name, suite in SUITES.items():
            print(f"suite {name}: " + ", ".join(f"{t} x{s['episodes']}" for t, s in suite.items()))
        print("tasks: " + " ".join(list_tasks()))
        return 0
    if args.from_hub is not None:
        from gato.collect_hub import main_from_hub

        return main_from_hub(args)
    if args.suite:
        plan = {t: {"episodes": args.episodes, **s} for t, s in SUITES[args.suite].items()}
    else:
        plan = {args.task: {"episodes": args.episodes}}
    for task, opts in plan.items():
        try:
            info = get_task(task)
        except (KeyError, ValueError) as e:
            raise UserError(f"--task: {e}") from None  # close matches, or where the list is
        discrete = isinstance(info.action_spec, DiscreteSpec)
        # A suite takes each noise where it fits; one task must fit the noise asked for.
        sigma = args.noise if not (args.suite and discrete) else 0.0
        epsilon = args.epsilon if not (args.suite and not discrete) else 0.0
        try:
            noise_config(info, args.policy, sigma, epsilon)
        except ValueError as e:
            raise UserError(str(e)) from None
        try:
            meta = collect_task(
                info,
                opts["episodes"],
                data_dir=args.data_dir,
                seed=args.seed,
                policy=args.policy,
                workers=args.workers,
                shard_size=args.shard_size,
                random_episodes=opts.get("random_episodes", args.random_episodes),
                max_steps=opts.get("max_steps", args.max_steps),
                progress=not args.no_progress,
                sigma=sigma,
                epsilon=epsilon,
            )
        except KeyboardInterrupt:  # the workers are already terminated (gato/procs.py)
            print(
                f"interrupted while collecting {info.name}. Complete shards are kept: run the "
                "same command again to resume.",
                file=sys.stderr,
            )
            return 130  # the shell's code for Ctrl-C
        except Exception as e:
            if type(e).__name__ != "BrokenProcessPool":
                raise
            print(
                f"{PROG}: error: a worker died while collecting {info.name} ({e}). Complete "
                "shards are kept: run the same command again to resume.",
                file=sys.stderr,
            )
            return 1  # not the user's mistake (that is status 2): the worker crashed
        print(_describe(meta), flush=True)
    return 0


if __name__ == "__main__":  # a UserError is one line `python -m gato.collect: error: ...`, exit 2
    sys.exit(run_command(main, prog=PROG))
