"""Checked reading of episode shards: a damaged file is named, verified and quarantined.

Every read of a shard goes through :func:`read_table`, so that a truncated or altered file is a
one-line :class:`ShardError` naming its path (pyarrow alone says "Couldn't deserialize thrift"
or "Parquet magic bytes not found", naming nothing). Shards are written with parquet page
checksums (gato/jat.py) and read with their verification on, so a flipped byte inside a data
page is caught even where it would decompress.

:func:`verify_shard` is what `gato.collect`'s resume runs on every shard it would count: the
footer must read, the row count must equal the episodes its name spans
(``episodes-<first>-<last>.parquet``, written for contiguous indices) and what metadata.json
recorded for it, every page must read back, and the episode indices must be the name's. A shard
that fails is renamed aside (:func:`quarantine`, ``<name>.corrupt``, which no reader lists)
and its episodes are collected again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gato.errors import UserError

CORRUPT_SUFFIX = ".corrupt"
_NAME = re.compile(r"^episodes-(\d+)-(\d+)\.parquet$")
RECOLLECT_HINT = (
    "move it aside and rerun the same `python -m gato.collect` command, which verifies every "
    "shard and collects a corrupt one's episodes again"
)


class ShardError(UserError):
    """A shard file cannot be read: truncated, altered or not a parquet file."""


def read_table(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pa.Table:
    """The Arrow table of one shard (optionally some columns); ShardError naming the file."""
    try:
        return pq.read_table(
            path, columns=list(columns) if columns else None, page_checksum_verification=True
        )
    except (pa.ArrowException, OSError) as e:  # ArrowInvalid, ArrowIOError, thrift errors
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ShardError(
            f"cannot read shard {path}: it is damaged (truncated or altered): {reason}; "
            + RECOLLECT_HINT
        ) from e


def name_range(path: str | os.PathLike) -> tuple[int, int] | None:
    """(first, last) episode index of a shard's name, None for another name."""
    m = _NAME.match(Path(path).name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def shard_rows(path: str | os.PathLike) -> int:
    """Rows of a shard according to its footer (ShardError if the footer does not read)."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as e:
        raise ShardError(f"cannot read shard {path}: its footer is damaged: {e}") from e


def verify_shard(path: str | os.PathLike, expected_rows: int | None = None) -> str | None:
    """What is wrong with a shard (one phrase), or None if it is whole (see the module)."""
    try:
        rows = shard_rows(path)
        span = name_range(path)
        if span is not None and rows != span[1] - span[0] + 1:
            return f"{rows} rows, but its name spans {span[1] - span[0] + 1} episodes"
        if expected_rows is not None and rows != expected_rows:
            return f"{rows} rows, but metadata.json recorded {expected_rows}"
        table = read_table(path)  # every page: decompression, decoding and page checksums
    except ShardError as e:
        return str(e.__cause__ or e).strip().splitlines()[0]
    if table.num_rows != rows:
        return f"{table.num_rows} rows read back, its footer says {rows}"
    if span is not None and "episode_index" in table.column_names:
        indices = table["episode_index"].to_pylist()
        if indices != list(range(span[0], span[1] + 1)):
            return f"episode indices {indices[:3]}... do not match its name"
    return None


def quarantine(path: str | os.PathLike) -> Path:
    """Rename a damaged shard aside (``<name>.corrupt``, or ``.corrupt-2`` ...); returns it."""
    path = Path(path)
    target, n = path.with_name(path.name + CORRUPT_SUFFIX), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}-{n}")
    os.replace(path, target)
    return target
