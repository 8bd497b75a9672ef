"""The JAT dataset's episodes as task folders: ``python -m gato.collect --from-hub CONFIG``.

Each config of ``jat-project/jat-dataset`` (``metaworld-assembly``, ``atari-pong``,
``babyai-go-to``, ``mujoco-ant``; ``all``: every supported one) is streamed row by row, each row
(one episode) converted to the env's specs here (gato/jat_hub.py: Atari frames resized, JAT's
minimal-action-set indices mapped to the full action ids) and written to ``data/<task>/``
shards by the same writer as ``gato.collect`` (gato/jat.py), so hub shards have the project's
schema (variable-length per-step lists, not the hub's fixed-length ``Sequence(length=n)``) and
mix with collected folders in one training run.

Episode ``i`` of a task is row ``i`` of the config's split (``--hub-split``, default train);
``--episodes N`` keeps rows 0..N-1. The folder's metadata.json is the one gato.collect writes
(gato/datasets.py ``summarize``): the windowed expert return (spec section 9) over the hub's
episodes, the 80% filter, the random policy's return from ``--random-episodes`` rollouts here
(capped at the longest hub episode, so both returns cover the same horizon: JAT's Meta-World
episodes are 100 steps, the env here runs 500), success where the data says (a ``success``
column) or the rewards do (BabyAI), and ``"source": "hub:jat-project/jat-dataset/<config>"``,
which gato.scores names in the score table.

Resume is collection's: shards are verified (a damaged one is moved aside), rows already stored
are skipped (the leading ones without being downloaded again), and the folder's lock is held
throughout. A folder that holds episodes from another source (gato.collect's expert, another
split) is refused, or skipped with a line under ``all``.

What JAT's recording code says about the rows (huggingface/jat, data/envs/): one row per episode
holding s_t, a_t and r_{t+1} per step, the terminal observation not stored; Atari rows are whole
games (sample-factory's envpool env ends an episode at a lost life, and JAT's script starts a new
row only at game over), frames the 84x84 grey stack of the last 4; Meta-World rows 100 steps;
every config split 90% train / 10% test in recording order.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from gato import datasets as store
from gato.collect_workers import (
    Job,
    chunks,
    default_env_fn,
    default_policy_fn,
    run_jobs,
    stored_shard_rows,
    stored_summaries,
    verify_stored_shards,
)
from gato.errors import UserError
from gato.jat import HUB_REPO, remove_temporary_files, write_shard
from gato.locks import folder_lock

RANDOM_SEED_OFFSET = 1_000_000  # as gato.collect: random rollouts' seeds
SOURCE_PREFIX = f"hub:{HUB_REPO}/"


class SourceClash(UserError):
    """The task folder holds episodes from another source or split."""


def resolve_configs(spec: str) -> list[str]:
    """``CONFIG[,CONFIG...]`` or ``all`` -> JAT config names (task names are accepted too)."""
    from gato.envs import get_task
    from gato.envs.jat_configs import UNSUPPORTED, jat_config, jat_configs

    if spec.strip() == "all":
        return [c.config for c in jat_configs() if c.status != UNSUPPORTED]
    out = []
    for name in (s.strip() for s in spec.split(",")):
        if not name:
            continue
        try:
            info = get_task(name)
        except (KeyError, ValueError) as e:
            raise UserError(f"--from-hub: {e}") from None
        if info.jat_name is None or jat_config(info.jat_name) is None:
            raise UserError(
                f"--from-hub: {name!r} is not in the JAT dataset; its configs: "
                "`python -m gato.envs --jat`"
            )
        out.append(info.jat_name)
    if not out:
        raise UserError("--from-hub: give CONFIG[,CONFIG...] or all")
    return list(dict.fromkeys(out))


def local_config(hub_path: str | Path | None, config: str) -> Path | None:
    """The local copy of a config under ``--hub-path`` (``DIR/<config>``), None for the hub."""
    if hub_path is None:
        return None
    root = Path(hub_path)
    if not root.is_dir():
        raise UserError(f"--hub-path {root} is not a folder")
    path = root / config
    if not path.exists():
        raise UserError(f"--hub-path: no {path} (a local copy holds one folder per config)")
    return path


def _rows_from(ds, start: int):
    """The dataset's rows from row ``start`` on (a stream skips without converting them)."""
    import datasets

    if start == 0:
        return ds
    if isinstance(ds, datasets.IterableDataset):
        return ds.skip(start)
    return ds.select(range(min(start, len(ds)), len(ds)))


def collect_hub_task(
    config: str,
    episodes: int,
    data_dir=None,
    hub_path=None,
    split: str = "train",
    seed: int = 0,
    workers: int = 2,
    shard_size: int = 25,
    random_episodes: int = 5,
    max_steps: int | None = None,
    progress: bool = True,
    cache_dir: str | None = None,
    env_fn=default_env_fn,
    policy_fn=default_policy_fn,
) -> dict:
    """Store (or complete) rows 0..episodes-1 of one JAT config as its task's folder; write and
    return the folder's metadata (see the module)."""
    from tqdm import tqdm

    from gato.envs import get_task
    from gato.envs.jat_configs import require_supported
    from gato.jat_hub import hub_dataset, hub_row_to_episode

    require_supported(config)
    info = get_task(config)
    local = local_config(hub_path, config)
    folder = store.task_dir(info.name, data_dir)
    source = SOURCE_PREFIX + config
    with folder_lock(folder, "gato.collect --from-hub"):
        remove_temporary_files(folder)
        settings = {
            "policy": "expert",
            "source": source,
            "hub_split": split,
            "base_seed": seed,
            "random_seed_offset": RANDOM_SEED_OFFSET,
        }
        meta_path = folder / store.METADATA_NAME
        old = store.read_metadata(info.name, data_dir) if meta_path.is_file() else {}
        clash = {k: (old.get(k), v) for k, v in settings.items() if old and old.get(k) != v}
        if clash:
            raise SourceClash(
                f"{folder} holds episodes from another source or settings (stored, requested): "
                f"{clash}; use another --data-dir or delete it"
            )
        if not old:
            store.write_json_atomic(meta_path, {"task": info.name, "complete": False, **settings})
        verify_stored_shards(folder, old.get("shard_rows") or {})
        have = {s["episode_index"] for s in stored_summaries(folder)}
        known_rows = old.get("hub_rows")  # the split's length, once a run has read to its end
        wanted = min(episodes, known_rows) if known_rows is not None else episodes
        todo = [i for i in range(wanted) if i not in have]
        if todo and old.get("complete"):
            store.write_json_atomic(meta_path, {**old, "complete": False})
        if have:
            print(f"{info.name}: {len(have)} episodes already in {folder}", file=sys.stderr)
        start_time = time.time()
        index = todo[0] if todo else wanted
        if todo:
            try:
                ds = hub_dataset(config, split, cache_dir, local, streaming=local is None)
            except FileNotFoundError as e:  # a local copy without the split's files
                raise UserError(f"--hub-path: {e}") from None
            bar = tqdm(
                total=len(todo), desc=config, unit="ep", disable=not progress, dynamic_ncols=True
            )
            buffer: list = []

            def flush() -> None:
                if buffer:
                    write_shard(folder, buffer)
                    buffer.clear()

            try:
                for row in _rows_from(ds, index):
                    if index >= wanted:
                        break
                    if index in have:  # a stored run of episodes ends the shard being built
                        flush()
                    else:
                        if len(buffer) >= shard_size:
                            flush()
                        buffer.append(hub_row_to_episode(row, info, index=index))
                        buffer[-1].episode_index = index  # the row's position in the split
                        bar.update(1)
                    index += 1
                flush()
            finally:
                bar.close()
            if index < wanted:  # the split ended first: remember its length
                known_rows = index
        stored = stored_summaries(folder)
        if not stored:
            raise UserError(f"{config}: the {split} split holds no episodes")
        # The random policy over the hub episodes' horizon (see the module), seeds as collect's.
        horizon = max(s["length"] for s in stored)
        cap = max_steps or min(info.max_episode_steps, horizon)
        reuse = (
            old.get("random_returns")
            if len(old.get("random_returns") or []) == random_episodes
            and old.get("random_max_steps") == cap
            else None
        )
        jobs = []
        if random_episodes and reuse is None:
            size = max(1, math.ceil(random_episodes / workers))
            jobs = [
                Job(
                    "random",
                    task_info=info,
                    indices=c,
                    seeds=[seed + RANDOM_SEED_OFFSET + i for i in c],
                    policy="random",
                    max_steps=cap,
                    folder=str(folder),
                    env_fn=env_fn,
                    policy_fn=policy_fn,
                )
                for c in chunks(range(random_episodes), size)
            ]
        results = run_jobs(jobs, workers, progress, f"{info.name} random") if jobs else []
        random_returns = reuse or [s["return"] for res in results for s in res]
        meta = store.summarize(info, stored, random_returns, settings)
        meta.update(
            complete=True,
            seconds=round(time.time() - start_time, 1),
            shard_rows=stored_shard_rows(folder),
            hub_rows=known_rows,
            random_max_steps=cap,
            max_steps=None,  # hub episodes are stored whole
        )
        store.write_json_atomic(meta_path, meta)
        return meta


def main_from_hub(args) -> int:
    """``python -m gato.collect --from-hub ...`` (args: gato.collect.CollectArgs)."""
    from gato.collect import _describe

    configs = resolve_configs(args.from_hub)
    every = args.from_hub.strip() == "all"
    for config in configs:
        try:
            meta = collect_hub_task(
                config,
                args.episodes,
                data_dir=args.data_dir,
                hub_path=args.hub_path,
                split=args.hub_split,
                seed=args.seed,
                workers=args.workers,
                shard_size=args.shard_size,
                random_episodes=args.random_episodes,
                max_steps=args.max_steps,
                progress=not args.no_progress,
            )
        except SourceClash as e:
            if not every:
                raise
            print(f"skipping {config}: {e}", file=sys.stderr)
            continue
        except KeyboardInterrupt:
            print(
                f"interrupted while storing {config}. Complete shards are kept: run the same "
                "command again to resume.",
                file=sys.stderr,
            )
            return 130
        print(_describe(meta) + f" [{meta['source']}]", flush=True)
    return 0
