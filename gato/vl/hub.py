"""JAT's vision-language and text configs, from the hub or from local files in their schema.

``jat-project/jat-dataset`` (GATO_SPEC.md section 12) has, beside the control tasks:

- ``conceptual-captions`` and ``ok-vqa``: rows ``{"images": Image, "text": str}`` (OK-VQA's text
  reads ``"Q: <question> A: <answer>"``);
- ``oscar`` and ``wikipedia``: rows ``{"text": str}``.

They are read the way :func:`gato.jat.load_hub_task` reads control tasks: with ``local_path``
(a parquet file, a folder of parquet files, or a ``Dataset.save_to_disk`` folder) nothing is
downloaded; otherwise ``datasets.load_dataset(HUB_REPO, config, split=..., streaming=True)``
streams the first ``max_rows`` rows (these configs hold millions of rows). Images come back
undecoded (``{"bytes", "path"}``), to be decoded and fitted when a training row needs them.

:func:`write_pairs_parquet` and :func:`write_texts_parquet` write rows in exactly that schema
(parquet with the ``datasets`` features in its metadata, one ``<split>-00000-of-00001.parquet``
file as the hub names its files), so the same reader reads generated scenes, a user's data and
the hub's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gato.jat import HUB_REPO, encode_png

HUB_PAIR_CONFIGS = ("conceptual-captions", "ok-vqa")
HUB_TEXT_CONFIGS = ("oscar", "wikipedia")
IMAGE_COLUMN, TEXT_COLUMN = "images", "text"


def pair_features():
    import datasets

    return datasets.Features(
        {IMAGE_COLUMN: datasets.Image(), TEXT_COLUMN: datasets.Value("string")}
    )


def text_features():
    import datasets

    return datasets.Features({TEXT_COLUMN: datasets.Value("string")})


def _write(folder, split: str, table: pa.Table) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{split}-00000-of-00001.parquet"
    tmp = folder / f".tmp-{os.getpid()}-{final.name}"
    pq.write_table(table, tmp)
    os.replace(tmp, final)  # never a partial file under the final name
    return final


def write_pairs_parquet(
    folder, pairs: Iterable[tuple[np.ndarray | bytes, str]], split: str = "train", rows=None
) -> Path:
    """(image, text) pairs -> ``folder/<split>-00000-of-00001.parquet`` with the hub's
    ``{"images": Image, "text": str}`` features. Images: uint8 (H, W, C) arrays (stored as PNG)
    or already encoded image bytes. `rows`: an expected count, checked."""
    images, texts = [], []
    for i, (image, text) in enumerate(pairs):
        if not isinstance(text, str):
            raise ValueError(f"pair {i}: the text must be a str, got {type(text).__name__}")
        data = bytes(image) if isinstance(image, bytes | bytearray) else encode_png(image)
        images.append({"bytes": data, "path": None})
        texts.append(text)
    if rows is not None and len(texts) != rows:
        raise ValueError(f"expected {rows} pairs, got {len(texts)}")
    schema = pair_features().arrow_schema
    table = pa.Table.from_arrays(
        [
            pa.array(images, schema.field(IMAGE_COLUMN).type),
            pa.array(texts, schema.field(TEXT_COLUMN).type),
        ],
        schema=schema,
    )
    return _write(folder, split, table)


def write_texts_parquet(folder, texts: Iterable[str], split: str = "train") -> Path:
    """Documents -> ``folder/<split>-00000-of-00001.parquet`` with the hub's ``{"text": str}``."""
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"documents must be str; rows {bad[:5]} are not")
    schema = text_features().arrow_schema
    return _write(
        folder, split, pa.Table.from_arrays([pa.array(texts, pa.string())], schema=schema)
    )


def _open(config: str, split: str, local_path, cache_dir, streaming: bool):
    """A datasets Dataset (local) or IterableDataset (hub, streaming) of one config's split."""
    import datasets

    if local_path is None:
        return datasets.load_dataset(
            HUB_REPO, config, split=split, cache_dir=cache_dir, streaming=streaming
        )
    path = Path(local_path)
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        ds = datasets.load_from_disk(str(path))
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    if path.is_file():
        files = [str(path)]
    else:
        every = sorted(path.rglob("*.parquet"))
        named = [p for p in every if p.name.startswith(f"{split}-")]  # the hub's file names
        files = [str(p) for p in (named or every)]
    if not files:
        raise FileNotFoundError(f"no parquet files or saved dataset under {path}")
    # Streaming reads the files in place (no Arrow copy in the datasets cache).
    return datasets.load_dataset(
        "parquet", data_files={split: files}, split=split, cache_dir=cache_dir, streaming=True
    )


def _check_columns(ds, config: str, wanted: tuple[str, ...]) -> None:
    names = getattr(ds, "column_names", None)
    if names is not None and not set(wanted) <= set(names):
        raise ValueError(f"{config}: expected columns {list(wanted)}, the data has {names}")


def load_hub_pairs(
    config: str,
    split: str = "train",
    local_path=None,
    cache_dir: str | None = None,
    max_rows: int | None = None,
) -> Iterator[tuple[dict, str]]:
    """(image struct {"bytes", "path"}, text) rows of ``conceptual-captions`` / ``ok-vqa``
    (or any data in that schema at ``local_path``); streams from the hub without it."""
    import datasets

    if local_path is None and config not in HUB_PAIR_CONFIGS:
        raise ValueError(f"unknown hub config {config!r}; JAT's are {HUB_PAIR_CONFIGS}")
    ds = _open(config, split, local_path, cache_dir, streaming=True)
    _check_columns(ds, config, (IMAGE_COLUMN, TEXT_COLUMN))
    ds = ds.cast_column(IMAGE_COLUMN, datasets.Image(decode=False))
    for i, row in enumerate(ds):
        if max_rows is not None and i >= max_rows:
            break
        text = row[TEXT_COLUMN]
        if not isinstance(text, str) or row[IMAGE_COLUMN] is None:
            raise ValueError(f"{config} row {i}: expected an image and a text string")
        yield row[IMAGE_COLUMN], text


def load_hub_texts(
    config: str,
    split: str = "train",
    local_path=None,
    cache_dir: str | None = None,
    max_rows: int | None = None,
) -> Iterator[str]:
    """The documents of ``oscar`` / ``wikipedia`` (or data in the ``{"text": str}`` schema at
    ``local_path``); streams from the hub without it."""
    if local_path is None and config not in HUB_TEXT_CONFIGS:
        raise ValueError(f"unknown hub config {config!r}; JAT's are {HUB_TEXT_CONFIGS}")
    ds = _open(config, split, local_path, cache_dir, streaming=True)
    _check_columns(ds, config, (TEXT_COLUMN,))
    for i, row in enumerate(ds):
        if max_rows is not None and i >= max_rows:
            break
        text = row[TEXT_COLUMN]
        if not isinstance(text, str):
            raise ValueError(f"{config} row {i}: the text is not a string")
        yield text
