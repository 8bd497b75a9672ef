"""The data folder: one sub-folder of JAT shards per task, plus that task's metadata.

Layout (``data/`` by default; ``--data-dir`` or the ``GATO_DATA`` environment variable)::

    data/<task>/episodes-000000-000024.parquet   # JAT rows, see gato/jat.py
    data/<task>/metadata.json                    # returns, expert/random return, filter, specs

The paper's data rules (GATO_SPEC.md section 9) live here: the windowed expert return and the
80% filter. Training reads only the episodes that pass the filter (``load_task_episodes``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gato.jat import Episode, read_shard, shard_paths

DATA_ENV_VAR = "GATO_DATA"
DEFAULT_DATA_DIR = "data"
METADATA_NAME = "metadata.json"
FILTER_FRACTION = 0.8
MAX_WINDOW = 1000
MAKE_DATA_HINT = "run `make data` (or `python -m gato.collect --task TASK --episodes N`)"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$GATO_DATA``, else ``./data``."""
    return Path(data_dir or os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR)


def task_dir(task: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of one task's shards (``task`` is the canonical task name)."""
    if not task or "/" in task or task.startswith("."):
        raise ValueError(f"not a task name usable as a folder name: {task!r}")
    return data_root(data_dir) / task


# ------------------------------------------------------------------ expert return and filter


def window_size(num_episodes: int) -> int:
    """W = min(1000, 0.1 * N), rounded down, at least 1 (integer arithmetic: no 0.1 rounding)."""
    return max(1, min(MAX_WINDOW, num_episodes // 10))


def expert_return(returns: Sequence[float]) -> float:
    """The paper's expert return: the best mean return over W consecutive episodes.

    Episodes are taken in collection order (episode index); W = :func:`window_size`.
    """
    r = np.asarray(returns, np.float64)
    if r.size == 0:
        raise ValueError("no episodes: the expert return is undefined")
    w = window_size(r.size)
    sums = np.convolve(r, np.ones(w), mode="valid")  # sums of every window of w
    return float(sums.max() / w)


def filter_threshold(expert: float, random: float | None = None) -> float:
    """The least return an episode needs to be trained on.

    The paper keeps episodes with ``return >= 0.8 * expert``. That rule assumes returns >= 0:
    with a negative expert return, 0.8 * expert is *above* the expert and would drop most of the
    expert's own episodes. So [decision] when the expert return is negative the 80% is measured
    from the random policy's return instead: ``random + 0.8 * (expert - random)`` (an episode
    must reach 80% of the way from random to expert; the same as the paper's rule when
    random = 0); if the random return is unknown or not below the expert's, the threshold is
    ``expert - 0.2 * |expert|``.
    """
    if expert >= 0:
        return FILTER_FRACTION * expert
    if random is not None and random < expert:
        return random + FILTER_FRACTION * (expert - random)
    return expert - (1 - FILTER_FRACTION) * abs(expert)


def passes_filter(returns: Sequence[float], threshold: float) -> np.ndarray:
    """Boolean mask of the episodes at or above the threshold (tolerant to float32 sums)."""
    r = np.asarray(returns, np.float64)
    return r >= threshold - 1e-6 * max(1.0, abs(threshold))


# ------------------------------------------------------------------------------- metadata


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to a temp file beside ``path`` and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_metadata(task: str, data_dir: str | os.PathLike | None = None) -> dict:
    """A task's metadata.json; a clear error if the task was never collected."""
    path = task_dir(task, data_dir) / METADATA_NAME
    if not path.is_file():
        root = data_root(data_dir)
        have = (
            sorted(p.name for p in root.iterdir() if (p / METADATA_NAME).is_file())
            if root.is_dir()
            else []
        )
        raise FileNotFoundError(
            f"no collected data for task {task!r} under {root} (missing {path}); {MAKE_DATA_HINT}."
            + (f" Collected tasks there: {', '.join(have)}" if have else "")
        )
    with open(path) as f:
        return json.load(f)


def summarize(
    task_info, episodes: Sequence[dict], random_returns: Sequence[float] | None, config: dict
) -> dict:
    """The metadata of a task from per-episode summaries (index, seed, return, length, success).

    ``config`` records how the data was made (policy, base seed, step cap, ...).
    """
    from gato.specs import spec_to_dict

    eps = sorted(episodes, key=lambda e: e["episode_index"])
    returns = [float(e["return"]) for e in eps]
    n = len(returns)
    random_mean = float(np.mean(random_returns)) if random_returns else None
    expert = expert_return(returns) if n else None
    threshold = filter_threshold(expert, random_mean) if n else None
    keep = passes_filter(returns, threshold) if n else np.zeros(0, bool)
    successes = [e["success"] for e in eps if e.get("success") is not None]
    return {
        "task": task_info.name,
        "family": task_info.family,
        "jat_name": task_info.jat_name,
        "episodes": n,
        "episode_indices": [int(e["episode_index"]) for e in eps],
        "seeds": [e["seed"] for e in eps],
        "returns": returns,
        "lengths": [int(e["length"]) for e in eps],
        "successes": [e.get("success") for e in eps],
        "success_rate": float(np.mean(successes)) if successes else None,
        "mean_return": float(np.mean(returns)) if n else None,
        "expert_return": expert,
        "expert_window": window_size(n) if n else None,
        "random_return": random_mean,
        "random_returns": [float(r) for r in random_returns or []],
        "filter_threshold": threshold,
        "filtered_episodes": int(keep.sum()),
        "filtered_indices": [int(e["episode_index"]) for e, k in zip(eps, keep, strict=True) if k],
        "obs_spec": spec_to_dict(task_info.obs_spec),
        "action_spec": spec_to_dict(task_info.action_spec),
        "max_episode_steps": task_info.max_episode_steps,
        **config,
    }


# --------------------------------------------------------------------------------- reading


def load_task_episodes(
    task: str, data_dir: str | os.PathLike | None = None, filtered: bool = True
) -> list[Episode]:
    """A task's episodes in episode-index order; only those passing the 80% filter by default.

    ``task`` may be a canonical name or a JAT alias (resolved through ``gato.envs.get_task``
    when the folder of that exact name does not exist).
    """
    folder = task_dir(task, data_dir)
    if not folder.is_dir():
        try:
            from gato.envs import get_task

            task = get_task(task).name
            folder = task_dir(task, data_dir)
        except (ImportError, KeyError, ValueError):
            pass
    meta = read_metadata(task, data_dir)
    if not meta.get("complete"):
        raise RuntimeError(
            f"the collection of {task!r} in {folder} was interrupted; run the same "
            "`python -m gato.collect` command again to resume it"
        )
    keep = set(meta["filtered_indices"]) if filtered else None
    episodes = []
    for path in shard_paths(folder):
        episodes.extend(ep for ep in read_shard(path) if keep is None or ep.episode_index in keep)
    episodes.sort(key=lambda ep: ep.episode_index)
    return episodes
