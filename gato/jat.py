"""Episodes in the JAT schema: one row per episode, one shard = one parquet file of rows.

Hugging Face's open Gato dataset (``jat-project/jat-dataset``, GATO_SPEC.md section 11) stores one
row per episode with the columns below, each a per-step list. Episodes this project collects use
the same columns, so a row maps 1:1 to the stacked observation dict that
:func:`gato.serialize.tokenize_episode` reads (env observations are dicts keyed by these column
names). Rows also carry ``task``, ``episode_index``, ``seed`` and ``success``, which the hub rows
lack (they are filled in by :func:`load_hub_task`).

On disk a shard is a parquet file written through an Arrow table whose schema carries the
``datasets`` features, so ``datasets.load_dataset("parquet", data_files=...)`` reads it too.
Writes are atomic: the file is written under a hidden temporary name in the same folder and then
renamed with :func:`os.replace`, so a crash never leaves a partial shard under a shard name;
readers only look at ``episodes-*.parquet`` and never see the temporary files. Reads go
through :func:`gato.shards.read_table`: a damaged shard is an error naming its file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gato.shards import read_table

CONTINUOUS_OBS = "continuous_observations"
DISCRETE_OBS = "discrete_observations"
TEXT_OBS = "text_observations"
IMAGE_OBS = "image_observations"
CONTINUOUS_ACT = "continuous_actions"
DISCRETE_ACT = "discrete_actions"
REWARDS = "rewards"
OBSERVATION_COLUMNS = (CONTINUOUS_OBS, DISCRETE_OBS, TEXT_OBS, IMAGE_OBS)
ACTION_COLUMNS = (CONTINUOUS_ACT, DISCRETE_ACT)
JAT_COLUMNS = OBSERVATION_COLUMNS + ACTION_COLUMNS + (REWARDS,)
HUB_REPO = "jat-project/jat-dataset"

SHARD_PREFIX = "episodes-"
SHARD_SUFFIX = ".parquet"
TMP_PREFIX = ".tmp-"  # hidden, and never matches SHARD_PREFIX: readers skip it


@dataclass
class Episode:
    """One episode: observation leaves stacked over T steps, T actions and T rewards.

    ``observations`` maps JAT observation columns to (T, ...) arrays (images (T, H, W, C) uint8)
    or, for text, a list of T strings. The observation after the last action is not stored.
    """

    task: str
    observations: dict[str, Any]
    actions: np.ndarray  # (T, A) float32 or (T,) int64
    rewards: np.ndarray  # (T,) float32
    seed: int | None = None
    episode_index: int | None = None
    success: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # not stored; e.g. the hub source

    @property
    def num_steps(self) -> int:
        return int(len(self.rewards))

    @property
    def total_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))

    @property
    def action_column(self) -> str:
        return DISCRETE_ACT if np.issubdtype(self.actions.dtype, np.integer) else CONTINUOUS_ACT

    def to_row(self) -> dict[str, Any]:
        """A JAT row: per-step lists (tensors flattened per step, images as PNG structs)."""
        t = self.num_steps
        row: dict[str, Any] = {}
        for col in OBSERVATION_COLUMNS:
            if col not in self.observations:
                continue
            value = self.observations[col]
            if len(value) != t:
                raise ValueError(f"{col}: {len(value)} steps but {t} rewards")
            if col == TEXT_OBS:
                row[col] = [str(s) for s in value]
            elif col == IMAGE_OBS:
                row[col] = [{"bytes": encode_png(f), "path": None} for f in np.asarray(value)]
            else:
                dtype = np.float32 if col == CONTINUOUS_OBS else np.int64
                row[col] = np.asarray(value, dtype).reshape(t, -1)
        actions = np.asarray(self.actions)
        if len(actions) != t:
            raise ValueError(f"{len(actions)} actions but {t} rewards")
        if self.action_column == DISCRETE_ACT:
            row[DISCRETE_ACT] = actions.astype(np.int64).reshape(t)
        else:
            row[CONTINUOUS_ACT] = actions.astype(np.float32).reshape(t, -1)
        row[REWARDS] = np.asarray(self.rewards, np.float32).reshape(t)
        row["task"] = self.task
        row["episode_index"] = self.episode_index
        row["seed"] = self.seed
        row["success"] = self.success
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any], task: str | None = None) -> Episode:
        """Inverse of :meth:`to_row`; also reads hub rows (images as PIL, dicts or arrays)."""
        task = task or row.get("task")
        if not task:
            raise ValueError("the row has no 'task' column: pass task=")
        rewards = np.asarray(row[REWARDS], np.float32).reshape(-1)
        obs: dict[str, Any] = {}
        for col in OBSERVATION_COLUMNS:
            value = row.get(col)
            if value is None:
                continue
            if col == TEXT_OBS:
                obs[col] = [str(s) for s in value]
            elif col == IMAGE_OBS:
                obs[col] = np.stack([decode_image(f) for f in value]) if len(value) else value
            else:
                dtype = np.float32 if col == CONTINUOUS_OBS else np.int64
                obs[col] = _stack_steps(value, dtype)
        if row.get(DISCRETE_ACT) is not None:
            actions = np.asarray(row[DISCRETE_ACT], np.int64).reshape(-1)
        elif row.get(CONTINUOUS_ACT) is not None:
            actions = _stack_steps(row[CONTINUOUS_ACT], np.float32)
        else:
            raise ValueError(
                f"row of task {task!r} has neither {DISCRETE_ACT} nor {CONTINUOUS_ACT}"
            )
        success = row.get("success")
        return cls(
            task=str(task),
            observations=obs,
            actions=actions,
            rewards=rewards,
            seed=None if row.get("seed") is None else int(row["seed"]),
            episode_index=None if row.get("episode_index") is None else int(row["episode_index"]),
            success=None if success is None else bool(success),
        )


def _stack_steps(value, dtype) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value.astype(dtype)
    steps = [np.asarray(v, dtype).reshape(-1) for v in value]
    return np.stack(steps) if steps else np.zeros((0, 0), dtype)


def encode_png(frame: np.ndarray) -> bytes:
    """A uint8 (H, W, C) frame, C in {1, 3, 4}, as lossless PNG bytes (what ``Image()`` stores)."""
    from PIL import Image

    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"image observations must be uint8, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    buf = io.BytesIO()
    # compress_level=1: collection speed matters more than the last few percent of disk.
    Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_image(value) -> np.ndarray:
    """A stored/hub image (PNG struct, PIL image or array) -> uint8 array (H, W, C)."""
    from PIL import Image

    if isinstance(value, Mapping):
        if value.get("bytes") is not None:
            value = Image.open(io.BytesIO(value["bytes"]))
        elif value.get("path"):
            value = Image.open(value["path"])
        else:
            raise ValueError("image struct with neither bytes nor path")
    arr = np.asarray(value)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr.astype(np.uint8, copy=False)


# ----------------------------------------------------------------------------- shards on disk


def _features(columns: Sequence[str]):
    import datasets

    float_2d = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
    types = {
        CONTINUOUS_OBS: float_2d,
        DISCRETE_OBS: datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
        TEXT_OBS: datasets.Sequence(datasets.Value("string")),
        IMAGE_OBS: datasets.Sequence(datasets.Image()),
        CONTINUOUS_ACT: float_2d,
        DISCRETE_ACT: datasets.Sequence(datasets.Value("int64")),
        REWARDS: datasets.Sequence(datasets.Value("float32")),
        "task": datasets.Value("string"),
        "episode_index": datasets.Value("int64"),
        "seed": datasets.Value("int64"),
        "success": datasets.Value("bool"),
    }
    return datasets.Features({c: types[c] for c in columns})


def _column_array(name: str, values: list, arrow_type: pa.DataType) -> pa.Array:
    if name in (CONTINUOUS_OBS, DISCRETE_OBS, CONTINUOUS_ACT):
        # (T, D) arrays -> list<list<x>> straight from numpy (no per-float Python objects).
        flat = np.concatenate([v.reshape(-1) for v in values])
        step_sizes = np.concatenate([np.full(v.shape[0], v.shape[1], np.int64) for v in values])
        inner_offsets = np.concatenate([[0], np.cumsum(step_sizes)]).astype(np.int32)
        outer_offsets = np.concatenate([[0], np.cumsum([v.shape[0] for v in values])])
        inner = pa.ListArray.from_arrays(inner_offsets, pa.array(flat))
        return pa.ListArray.from_arrays(outer_offsets.astype(np.int32), inner).cast(arrow_type)
    return pa.array([v.tolist() if isinstance(v, np.ndarray) else v for v in values], arrow_type)


def episodes_to_table(episodes: Sequence[Episode]) -> pa.Table:
    """Rows of one task (same columns) -> an Arrow table with the ``datasets`` features."""
    if not episodes:
        raise ValueError("a shard needs at least one episode")
    rows = [ep.to_row() for ep in episodes]
    columns = [c for c in JAT_COLUMNS if c in rows[0]] + [
        "task",
        "episode_index",
        "seed",
        "success",
    ]
    for r in rows[1:]:
        if set(r) != set(rows[0]):
            raise ValueError(f"episodes of one shard have different columns: {sorted(r)}")
    schema = _features(columns).arrow_schema
    arrays = [_column_array(c, [r[c] for r in rows], schema.field(c).type) for c in columns]
    return pa.Table.from_arrays(arrays, schema=schema)


def shard_name(indices: Sequence[int]) -> str:
    """``episodes-<first>-<last>.parquet`` (6-digit, zero-padded episode indices)."""
    return f"{SHARD_PREFIX}{min(indices):06d}-{max(indices):06d}{SHARD_SUFFIX}"


class _CrashMidWrite(io.RawIOBase):
    """A file for pyarrow to write into that calls `crash` (a test hook: SIGKILL) at pyarrow's
    second write, once the first bytes are synced to disk: the file then holds the parquet magic
    and a page header but no footer, as after a kill -9 in the middle of writing a shard."""

    def __init__(self, f, crash) -> None:
        self.f, self.crash, self.calls, self.written = f, crash, 0, 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.written

    def write(self, data) -> int:
        n = self.f.write(data)
        self.written += n
        self.calls += 1
        if self.calls == 2:
            self.f.flush()
            os.fsync(self.f.fileno())
            self.crash()
        return n


def write_shard(
    folder: str | os.PathLike,
    episodes: Sequence[Episode],
    name: str | None = None,
    _crash_before_rename=None,
    _crash_mid_write=None,
) -> Path:
    """Write episodes as one parquet shard, atomically (temp file + ``os.replace``).

    Test hooks: ``_crash_before_rename()`` runs once the file is complete and synced,
    ``_crash_mid_write()`` in the middle of pyarrow's writing (see _CrashMidWrite)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if name is None:
        idx = [ep.episode_index for ep in episodes]
        if any(i is None for i in idx):
            raise ValueError("episodes without episode_index need an explicit shard name")
        name = shard_name(idx)
    final = folder / name
    tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{name}"
    table = episodes_to_table(episodes)
    with open(tmp, "wb") as f:
        sink = f if _crash_mid_write is None else _CrashMidWrite(f, _crash_mid_write)
        pq.write_table(table, sink, compression="zstd", write_page_checksum=True)  # gato/shards.py
        f.flush()
        os.fsync(f.fileno())  # the data is on disk before the name says it is complete
    if _crash_before_rename is not None:
        _crash_before_rename()  # test hook: simulate dying between write and rename
    os.replace(tmp, final)
    return final


def shard_paths(folder: str | os.PathLike) -> list[Path]:
    """Complete shards of a task folder, sorted; temporary files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{SHARD_PREFIX}*{SHARD_SUFFIX}") if p.is_file())


def remove_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Delete leftovers of interrupted writes (only safe when no writer is running)."""
    folder = Path(folder)
    stale = sorted(folder.glob(f"{TMP_PREFIX}*")) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def read_shard(path: str | os.PathLike) -> list[Episode]:
    """All episodes of one shard file."""
    return [Episode.from_row(row) for row in read_table(path).to_pylist()]


def iter_episodes(folder: str | os.PathLike) -> Iterator[Episode]:
    """Episodes of every complete shard of a folder, in shard order."""
    for path in shard_paths(folder):
        yield from read_shard(path)


def shard_episode_indices(path: str | os.PathLike) -> list[int]:
    """The episode indices stored in a shard (reads that one column only)."""
    return [int(i) for i in read_table(path, ["episode_index"])["episode_index"].to_pylist()]


# ------------------------------------------------------------------------ to a TokenSequence


def episode_observations(episode: Episode, obs_spec: Mapping) -> dict[str, Any]:
    """The stacked observation dict of ``obs_spec``, leaves reshaped to (T, *leaf.shape)."""
    from gato.specs import TextSpec

    out = {}
    for key, leaf in obs_spec.items():
        if key not in episode.observations:
            raise ValueError(
                f"episode of {episode.task!r} has no {key!r}; it has {sorted(episode.observations)}"
            )
        value = episode.observations[key]
        if isinstance(leaf, TextSpec):
            out[key] = list(value)
        else:
            out[key] = np.asarray(value).reshape(episode.num_steps, *leaf.shape)
    return out


def episode_to_sequence(episode: Episode, task_info, text_tokenizer=None, first_timestep: int = 0):
    """An episode -> a gato TokenSequence, via :func:`gato.serialize.tokenize_episode`.

    ``task_info`` is a :class:`gato.envs.TaskInfo` (anything with ``obs_spec`` and
    ``action_spec``); ``text_tokenizer`` defaults to the project's SentencePiece model.
    """
    from gato.serialize import tokenize_episode

    spec = task_info.action_spec
    obs = episode_observations(episode, task_info.obs_spec)
    actions = np.asarray(episode.actions).reshape(episode.num_steps, *spec.shape)
    return tokenize_episode(obs, actions, task_info.obs_spec, spec, text_tokenizer, first_timestep)


# Reading the Hugging Face dataset lives in gato/jat_hub.py; its names stay importable from here
# (imported on first use: it needs `datasets`, slow to import, and it imports this module).
_HUB_NAMES = ("convert_image", "hub_row_to_episode", "load_hub_task")


def __getattr__(name: str):
    if name in _HUB_NAMES:
        from gato import jat_hub

        return getattr(jat_hub, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
