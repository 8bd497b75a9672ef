"""The text corpus shipped with the package (gato/data/text_corpus.jsonl.gz, TEXT_CORPUS.md).

    >>> docs = text_documents("test")   # the 18 held-out documents, list[str]
    >>> train = text_documents("train") # the other 171 (training and validation use only these)

Python 3.11 Tutorial and FAQ text (PSF License) and WordNet 3.0 entries (WordNet licence), a part
of what the SentencePiece model was trained on. The split is fixed in the file: every 10th
document is ``test``.
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

CORPUS_PATH = Path(__file__).resolve().parent.parent / "data" / "text_corpus.jsonl.gz"
CORPUS_SPLITS = ("train", "test")


@functools.cache
def _rows() -> tuple[dict, ...]:
    if not CORPUS_PATH.is_file():
        raise FileNotFoundError(
            f"the shipped text corpus {CORPUS_PATH} is missing; rebuild it with "
            "`python tokenizers/build_text_corpus.py`"
        )
    with gzip.open(CORPUS_PATH, "rt", encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f if line.strip())


def corpus_rows(split: str) -> list[dict]:
    """The corpus rows ({"text", "source", "split"}) of one split, in file order."""
    if split not in CORPUS_SPLITS:
        raise ValueError(f"split must be one of {CORPUS_SPLITS}, got {split!r}")
    return [dict(r) for r in _rows() if r["split"] == split]


def text_documents(split: str = "test") -> list[str]:
    """The documents of one split of the shipped corpus, in file order."""
    return [r["text"] for r in corpus_rows(split)]
