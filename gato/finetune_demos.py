"""The demonstration budget of a fine-tuning run (gato/finetune.py, the paper's Figure 9).

The first --demos episodes by episode index among those passing the 80% filter, collected first
if asked (``ensure_demos``), exposed to the sampler through ``<run>/demos/<task>/``: a metadata
copy listing only them and links to the shards that hold them (``demo_view``), so nothing else
can leak in and the run records exactly what it saw.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from gato.datasets import METADATA_NAME, read_metadata, task_dir, write_json_atomic
from gato.jat import shard_episode_indices, shard_paths


class DemoError(ValueError):
    """Fewer filtered expert episodes of the task than the demonstration budget."""


def suggest_episodes(meta: dict, demos: int) -> int:
    """Episodes to collect in all (gato.collect completes 0..N-1) to likely get `demos` past the
    filter, from the share that passed so far (with a 20% margin)."""
    have, total = int(meta.get("filtered_episodes") or 0), int(meta.get("episodes") or 0)
    share = have / total if have and total else 0.5
    return max(total + 1, math.ceil(demos / share * 1.2))


def ensure_demos(
    task: str, data_dir: str, demos: int, collect: bool = False, workers: int = 2
) -> dict:
    """The task's metadata once at least `demos` episodes pass the filter: collected if asked
    (a few rounds, as the filter moves with the expert return), else a DemoError."""
    try:
        meta = read_metadata(task, data_dir)
    except FileNotFoundError:
        if not collect:
            raise
        meta = {"episodes": 0, "filtered_episodes": 0}
    for _ in range(4):
        have = int(meta.get("filtered_episodes") or 0)
        if meta.get("complete") and have >= demos:
            return meta
        n = suggest_episodes(meta, demos)
        if not collect:
            raise DemoError(
                f"{task}: only {have} of the {meta.get('episodes', 0)} episodes in "
                f"{task_dir(task, data_dir)} pass the 80% filter, fewer than --demos {demos}. "
                f"Collect more: `python -m gato.collect --task {task} --episodes {n} "
                f"--data-dir {data_dir}` (or pass --collect)"
            )
        from gato.collect import collect_task
        from gato.envs import get_task

        print(f"{task}: {have} filtered episodes < {demos}; collecting up to {n}", flush=True)
        randoms = len(meta.get("random_returns") or []) or 10
        meta = collect_task(  # the stored settings, else collect_task refuses to extend the folder
            get_task(task),
            n,
            data_dir,
            seed=meta.get("base_seed", 0),
            workers=workers,
            random_episodes=randoms,
            max_steps=meta.get("max_steps"),
        )
    raise DemoError(f"{task}: still fewer than {demos} filtered episodes after collecting {n}")


def demo_view(task: str, data_dir: str, demos: int, view_root: Path) -> list[int]:
    """Write `view_root/<task>/`: the task's metadata listing only the first `demos` filtered
    episodes, and links to (or copies of) the shards holding them. Returns their indices."""
    meta = read_metadata(task, data_dir)
    chosen = sorted(int(i) for i in meta["filtered_indices"])[:demos]
    if len(chosen) < demos:
        raise DemoError(f"{task}: {len(chosen)} filtered episodes < --demos {demos}")
    source, view = task_dir(task, data_dir), view_root / task
    view.mkdir(parents=True, exist_ok=True)
    wanted = set(chosen)
    for shard in shard_paths(source):
        if wanted.intersection(shard_episode_indices(shard)):
            link = view / shard.name
            try:
                link.symlink_to(shard.resolve())
            except OSError:  # no symlinks here (some filesystems): a copy reads the same
                shutil.copy2(shard, link)
    view_meta = {
        **meta,
        "filtered_indices": chosen,
        "filtered_episodes": len(chosen),
        "finetune_source": str(source.resolve()),
    }
    write_json_atomic(view / METADATA_NAME, view_meta)
    return chosen
