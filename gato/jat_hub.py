"""Episodes of Hugging Face's JAT dataset (``jat-project/jat-dataset``), in this project's specs.

:func:`load_hub_task` reads one JAT config (from the hub, or a local copy in its format) and
yields :class:`gato.jat.Episode` objects whose observations match our env's specs
(:func:`convert_image` turns JAT's 84x84 grayscale frame stacks into the env's images). Split
from gato/jat.py, which still exports these names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gato.jat import HUB_REPO, IMAGE_OBS, TEXT_OBS, Episode


def convert_image(frame: np.ndarray, image_spec) -> np.ndarray:
    """A hub frame -> the env's ImageSpec (H, W, C) uint8.

    JAT stores Atari observations as 84x84 grayscale stacks of the last 4 frames (channel 3 the
    newest). Gato patches single frames whose sides are multiples of 16, and our envs emit RGB.
    So: a spec with 4 channels keeps the stack; otherwise the newest frame is taken (colour is
    lost and cannot be recovered), resized bilinearly to the spec's height and width, and repeated
    over the spec's channels. Frames that already have the spec's channels are only resized.
    """
    from PIL import Image

    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[0] == 4 and frame.shape[2] != 4:
        frame = np.moveaxis(frame, 0, -1)  # channels-first stacks (4, 84, 84)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    h, w, c = image_spec.height, image_spec.width, image_spec.channels
    if frame.shape[2] != c:
        if frame.shape[2] == 4 and c in (1, 3):
            frame = frame[:, :, 3:4]  # the newest frame of the stack
        elif frame.shape[2] == 3 and c == 1:
            frame = np.asarray(Image.fromarray(frame).convert("L"))[:, :, None]
        elif frame.shape[2] != 1:
            raise ValueError(f"cannot convert a {frame.shape} frame to {image_spec}")
    if frame.shape[:2] != (h, w):
        planes = [
            np.asarray(Image.fromarray(frame[:, :, i]).resize((w, h), Image.BILINEAR))
            for i in range(frame.shape[2])
        ]
        frame = np.stack(planes, axis=-1)
    if frame.shape[2] == 1 and c != 1:
        frame = np.repeat(frame, c, axis=2)
    return frame.astype(np.uint8, copy=False)


def hub_row_to_episode(row: Mapping[str, Any], task_info, index: int | None = None) -> Episode:
    """A ``jat-project/jat-dataset`` row -> an Episode in the env's specs (see convert_image)."""
    from gato.envs.jat_configs import from_jat_actions
    from gato.specs import ImageSpec

    ep = Episode.from_row(row, task=task_info.name)
    ep.episode_index = index if ep.episode_index is None else ep.episode_index
    # Atari: JAT's minimal-action-set indices -> this env's full-set ids (issue 15).
    ep.actions = from_jat_actions(task_info, ep.actions)
    image_spec = task_info.obs_spec.get(IMAGE_OBS)
    if isinstance(image_spec, ImageSpec) and IMAGE_OBS in ep.observations:
        ep.observations[IMAGE_OBS] = np.stack(
            [convert_image(f, image_spec) for f in ep.observations[IMAGE_OBS]]
        )
    for key, leaf in task_info.obs_spec.items():
        if key == IMAGE_OBS or key == TEXT_OBS or key not in ep.observations:
            continue
        got = ep.observations[key].shape[1:]
        if int(np.prod(got)) != int(np.prod(leaf.shape)):
            raise ValueError(
                f"hub {key} of {task_info.name!r} has per-step shape {got}, "
                f"the env's spec says {leaf.shape}"
            )
    if ep.success is None and task_info.family == "babyai":
        ep.success = ep.total_return > 0  # as gato.rollout: BabyAI rewards only a completed mission
    ep.extra["source"] = f"hub:{HUB_REPO}/{task_info.jat_name}"
    return ep


_SPLITS = ("train", "test", "validation")


def _split_of(file: Path, root: Path) -> str | None:
    for name in _SPLITS:
        if file.name.startswith((f"{name}-", f"{name}.")) or name in file.relative_to(root).parts:
            return name
    return None


def local_split_files(path: str | os.PathLike, split: str = "train") -> list[str]:
    """The parquet files of one split in a local copy of a config: a file, or a folder as the
    hub stores it (``<config>/train-00000-of-00002.parquet``, ``test-...``; or ``train/*.parquet``).
    A folder whose files name no split counts wholly as the split asked for."""
    path = Path(path)
    if path.is_file():
        return [str(path)]
    files = sorted(path.rglob("*.parquet"))
    splits = {p: _split_of(p, path) for p in files}
    if any(splits.values()):
        files = [p for p in files if splits[p] == split]
    return [str(p) for p in files]


def hub_dataset(
    jat_config_name: str,
    split: str = "train",
    cache_dir: str | None = None,
    local_path: str | os.PathLike | None = None,
    streaming: bool = False,
):
    """The rows of one JAT config, unconverted: a ``datasets`` Dataset (local data) or, from the
    hub with ``streaming``, an IterableDataset (rows arrive as they download)."""
    import datasets

    if local_path is None:
        # The real hub path: one config per task, episodes as rows (GATO_SPEC.md section 11).
        return datasets.load_dataset(
            HUB_REPO, jat_config_name, split=split, cache_dir=cache_dir, streaming=streaming
        )
    path = Path(local_path)
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        ds = datasets.load_from_disk(str(path))
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    files = local_split_files(path, split)
    if not files:
        raise FileNotFoundError(f"no {split} parquet files or saved dataset under {path}")
    return datasets.load_dataset(
        "parquet", data_files={split: files}, split=split, cache_dir=cache_dir
    )


def load_hub_task(
    jat_config_name: str,
    split: str = "train",
    cache_dir: str | None = None,
    local_path: str | os.PathLike | None = None,
    task_info=None,
    max_episodes: int | None = None,
) -> Iterator[Episode]:
    """Episodes of one JAT config (e.g. ``metaworld-assembly``), converted to our env's specs.

    With ``local_path`` (a folder written by ``Dataset.save_to_disk``, a parquet file, or a
    folder of parquet files in the JAT format) nothing is downloaded; otherwise the data comes
    from ``datasets.load_dataset("jat-project/jat-dataset", jat_config_name)`` (needs internet
    the first time, then ``cache_dir``). ``task_info`` defaults to ``gato.envs.get_task``.
    """
    from gato.envs.jat_configs import require_supported

    require_supported(jat_config_name)  # a config whose layout cannot match: one-line UserError
    if task_info is None:
        from gato.envs import get_task

        task_info = get_task(jat_config_name)
    streaming = max_episodes is not None and local_path is None
    ds = hub_dataset(jat_config_name, split, cache_dir, local_path, streaming)
    for i, row in enumerate(ds):
        if max_episodes is not None and i >= max_episodes:
            break
        yield hub_row_to_episode(row, task_info, index=i)
