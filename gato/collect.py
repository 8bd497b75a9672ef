"""Collect expert (or random) episodes into JAT shards: ``python -m gato.collect``.

Episode ``i`` of a task always uses seed ``base_seed + i``, whichever worker runs it, so a
collection is reproducible and can resume: episode indices already stored in complete shards
are skipped, and only the missing ones are collected (an interrupted run is resumed by running
the same command again). Each worker process writes its own shards atomically (gato/jat.py).
Killing the command (SIGKILL, SIGTERM or Ctrl-C) stops its workers too (gato/procs.py), so
no orphan goes on writing shards that a rerun would race.

After collecting, the task's ``metadata.json`` records returns, the expert return (paper's
windowed formula), the random policy's return measured now, success rate, the 80% filter and the
specs (gato/datasets.py). ``python -m gato.collect --suite default`` builds the small default
dataset that ``make data`` makes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from gato import datasets as store
from gato.collect_workers import (
    CRASH_AT_EPISODE_ENV,
    CRASH_IN_WRITE_ENV,
    Job,
    chunks,
    default_env_fn,
    default_policy_fn,
    run_jobs,
)
from gato.jat import remove_temporary_files, shard_paths

__all__ = ["CRASH_AT_EPISODE_ENV", "CRASH_IN_WRITE_ENV", "SUITES", "collect_task", "main"]

# The default suite (`make data`): every family the project trains on, a few episodes each, so
# that it runs in minutes on 2 CPU cores. Pong episodes are full games (4,500-6,500 agent steps
# of 80x80 RGB frames with the RAM-tracking expert, ~10 s each), so Pong gets few episodes rather
# than a step cap, which would cut games short and bias its expert and random returns. Random
# returns are averaged over more episodes where episodes are cheap (BabyAI).
SUITES: dict[str, dict[str, dict[str, Any]]] = {
    "default": {
        "cartpole.balance": {"episodes": 20, "random_episodes": 10},
        "cartpole.swingup": {"episodes": 20, "random_episodes": 10},
        "metaworld.reach": {"episodes": 20, "random_episodes": 10},
        "metaworld.push": {"episodes": 20, "random_episodes": 10},
        "metaworld.button-press": {"episodes": 20, "random_episodes": 10},
        "metaworld.door-open": {"episodes": 20, "random_episodes": 10},
        "metaworld.drawer-close": {"episodes": 20, "random_episodes": 10},
        "metaworld.window-open": {"episodes": 20, "random_episodes": 10},
        "metaworld.assembly": {"episodes": 20, "random_episodes": 10},
        "babyai.go-to-red-ball": {"episodes": 50, "random_episodes": 100},
        "babyai.go-to-local": {"episodes": 50, "random_episodes": 100},
        "babyai.pickup-loc": {"episodes": 50, "random_episodes": 100},
        "babyai.open": {"episodes": 50, "random_episodes": 100},
        "atari.pong": {"episodes": 4, "random_episodes": 2},
    },
}

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
    list: bool = field(default=False, metadata={"help": "list suites and tasks, then exit"})
    no_progress: bool = field(default=False, metadata={"help": "no progress bar"})


def parse_args(argv: Sequence[str] | None = None) -> CollectArgs:
    parser = argparse.ArgumentParser(
        prog="python -m gato.collect",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for f in fields(CollectArgs):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=f.metadata["help"])
        else:
            kind = int if f.type in ("int", "int | None") else str
            default = None if f.default is MISSING else f.default
            text = f.metadata["help"]
            if "default" not in text:
                text += f" (default: {default})"
            parser.add_argument(flag, type=kind, default=default, help=text)
    args = CollectArgs(**{k.replace("-", "_"): v for k, v in vars(parser.parse_args(argv)).items()})
    if not args.list and (args.task is None) == (args.suite is None):
        parser.error("give exactly one of --task or --suite (or --list)")
    if args.suite is not None and args.suite not in SUITES:
        parser.error(f"unknown suite {args.suite!r}; suites: {', '.join(SUITES)}")
    if args.policy not in ("expert", "random"):
        parser.error(f"--policy must be expert or random, got {args.policy!r}")
    for name in ("episodes", "workers", "shard_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


# ------------------------------------------------------------------------------- a task


def stored_summaries(folder) -> list[dict]:
    """Per-episode summaries of a task folder's complete shards (first copy of an index wins)."""
    import pyarrow.parquet as pq

    seen: dict[int, dict] = {}
    for path in shard_paths(folder):
        table = pq.read_table(path, columns=["episode_index", "seed", "rewards", "success"])
        for row in table.to_pylist():
            seen.setdefault(
                row["episode_index"],
                {
                    "episode_index": row["episode_index"],
                    "seed": row["seed"],
                    "return": float(np.sum(row["rewards"], dtype=np.float64)),
                    "length": len(row["rewards"]),
                    "success": row["success"],
                },
            )
    return list(seen.values())


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
) -> dict:
    """Collect (or complete) episodes 0..N-1 of a task; write and return its metadata."""
    folder = store.task_dir(task_info.name, data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    remove_temporary_files(folder)  # leftovers of a crashed run: never complete shards
    cap = max_steps or task_info.max_episode_steps
    config = {
        "policy": policy,
        "base_seed": seed,
        "max_steps": cap,
        "random_seed_offset": RANDOM_SEED_OFFSET,
    }
    meta_path = folder / store.METADATA_NAME
    old = store.read_metadata(task_info.name, data_dir) if meta_path.is_file() else {}
    clash = {k: (old[k], v) for k, v in config.items() if k in old and old[k] != v}
    if clash:
        raise SystemExit(
            f"{folder} holds episodes collected with other settings "
            f"(stored, requested): {clash}; use another --data-dir or delete it"
        )
    if not old:  # marks the folder as in progress until the real metadata replaces it
        store.write_json_atomic(meta_path, {"task": task_info.name, "complete": False, **config})

    have = {s["episode_index"]: s for s in stored_summaries(folder)}
    bad = [i for i, s in have.items() if s["seed"] != seed + i]
    if bad:
        raise SystemExit(f"{folder}: episodes {bad[:5]} were collected with another base seed")
    todo = [i for i in range(episodes) if i not in have]
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
        Job("collect", indices=c, seeds=[seed + i for i in c], **common) for c in chunks(todo, size)
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
            f"{task_info.name}: {len(have)} episodes already in {folder}, {len(todo)} to collect",
            file=sys.stderr,
        )
    start = time.time()
    results = run_jobs(jobs, workers, progress, task_info.name)
    done = zip(jobs, results, strict=True)
    random_returns = reuse_random or [
        s["return"] for j, res in done if j.kind == "random" for s in res
    ]
    meta = store.summarize(task_info, stored_summaries(folder), random_returns, config)
    meta.update(complete=True, seconds=round(time.time() - start, 1))
    store.write_json_atomic(meta_path, meta)
    return meta


def _describe(meta: dict) -> str:
    def fmt(x):
        return "n/a" if x is None else f"{x:.3g}"

    return (
        f"{meta['task']}: {meta['episodes']} episodes, expert {fmt(meta['expert_return'])}, "
        f"random {fmt(meta['random_return'])}, success {fmt(meta['success_rate'])}, "
        f"{meta['filtered_episodes']} pass the 80% filter ({meta['seconds']} s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from gato.envs import get_task, list_tasks

    if args.list:
        for name, suite in SUITES.items():
            print(f"suite {name}: " + ", ".join(f"{t} x{s['episodes']}" for t, s in suite.items()))
        print("tasks: " + " ".join(list_tasks()))
        return 0
    if args.suite:
        plan = {t: {"episodes": args.episodes, **s} for t, s in SUITES[args.suite].items()}
    else:
        plan = {args.task: {"episodes": args.episodes}}
    for task, opts in plan.items():
        try:
            info = get_task(task)
        except (KeyError, ValueError) as e:
            print(
                f"error: unknown task {task!r} ({e}); `python -m gato.collect --list` lists tasks",
                file=sys.stderr,
            )
            return 2
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
                f"error: a worker died while collecting {info.name} ({e}). Complete shards "
                "are kept: run the same command again to resume.",
                file=sys.stderr,
            )
            return 1
        print(_describe(meta), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
