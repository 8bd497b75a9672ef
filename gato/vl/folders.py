"""A user's own data: a folder of captioned images, or a folder of text files.

**Images**: a folder holding the images and one index, ``metadata.jsonl`` or ``metadata.csv``
(the names Hugging Face's ``imagefolder`` uses; ``captions.jsonl`` / ``captions.csv`` are
accepted too), with a row per example: the image's file name relative to the folder
(``file_name``; ``file`` or ``image`` also work) and its text (``text``; or ``caption``). A CSV
has a header row. Any image format PIL reads; images are fitted to multiples of 16 when used.

**Text**: every ``*.txt`` file under the folder (recursively, sorted) is one document; a
``*.jsonl`` file holds one document per line in its ``text`` field.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from gato.data_sources import read_documents

INDEX_NAMES = ("metadata.jsonl", "metadata.csv", "captions.jsonl", "captions.csv")
FILE_KEYS = ("file_name", "file", "image")
TEXT_KEYS = ("text", "caption")


def _pick(row: dict, keys, where: str) -> str:
    for k in keys:
        if isinstance(row.get(k), str):
            return row[k]
    raise ValueError(f"{where}: expected a string field among {list(keys)}, got {sorted(row)}")


def find_index(folder) -> Path | None:
    """The index file of an image folder, or None."""
    for name in INDEX_NAMES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def read_image_folder(folder) -> list[tuple[Path, str]]:
    """(image path, text) of every row of the folder's index, in its order; every image must
    exist (an error names the row)."""
    folder = Path(folder)
    index = find_index(folder)
    if index is None:
        raise FileNotFoundError(f"{folder}: no image index (one of {', '.join(INDEX_NAMES)})")
    rows: list[tuple[int, dict]] = []
    with open(index, encoding="utf-8", newline="") as f:
        if index.suffix == ".csv":
            rows = [(n, dict(r)) for n, r in enumerate(csv.DictReader(f), 2)]
        else:
            for n, line in enumerate(f, 1):
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError(f"{index}:{n}: expected a JSON object")
                    rows.append((n, row))
    out = []
    for n, row in rows:
        where = f"{index}:{n}"
        name, text = _pick(row, FILE_KEYS, where), _pick(row, TEXT_KEYS, where)
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{where}: image {path} does not exist")
        out.append((path, text))
    if not out:
        raise ValueError(f"{index} lists no images")
    return out


def read_text_folder(folder) -> list[str]:
    """The documents of a folder of ``.txt`` (and ``.jsonl``) files."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".txt", ".jsonl") and p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: no .txt or .jsonl files")
    docs = read_documents(files)
    if not docs:
        raise ValueError(f"{folder}: the text files are empty")
    return docs
