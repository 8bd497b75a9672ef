"""The vision-language and text tasks of the training mixture: names, families and sources.

A task name that starts with ``vl.`` is a vision-language task (family ``vl``), one that starts
with ``text.`` a text task (family ``text``); they mix with control tasks by sample weight
(``--tasks cartpole.balance,vl.scenes,text.corpus``, ``--task-weights vl=8,text=6.7``):

- ``vl.scenes``: generated scenes (gato/vl/scenes.py), train ids; validation uses the val ids.
- ``text.corpus``: the shipped corpus's train documents (gato/vl/text_corpus.py).
- ``vl.NAME``: the folder ``<data_dir>/vl.NAME``, images with ``metadata.jsonl`` / ``.csv``
  (gato/vl/folders.py) or parquet in the hub's ``{"images", "text"}`` schema.
- ``text.NAME``: the folder ``<data_dir>/text.NAME``, ``.txt`` / ``.jsonl`` files or parquet in
  the hub's ``{"text"}`` schema.
- ``vl.conceptual-captions``, ``vl.ok-vqa``, ``text.oscar``, ``text.wikipedia`` without such a
  folder: JAT's hub config of that name, streamed (its first ``HUB_MAX_ROWS`` rows; internet).

A folder can be a symbolic link to data kept elsewhere. Validation holds out, of stored image
examples, the last 1% (at least ``val_items``); of documents, the last ``val_items`` (as
``--text-files`` does); scenes use their own val id range. The test splits (scene ids
[0, 100000), the corpus's test documents) are never loaded here.

Family weights (gato.data.FAMILY_WEIGHTS, the paper's Table 1): ``text`` 6.7 (MassiveText) and
``vl`` 8.0, the rest of the paper's 14.7% for vision/language (M3W, ALIGN, MS-COCO, Conceptual
Captions, LTIP, OKVQA, VQAv2), so together they make the paper's 14.7%.
"""

from __future__ import annotations

import functools
from pathlib import Path

from gato.data_sources import Documents, split_counts
from gato.vl.folders import find_index, read_image_folder, read_text_folder
from gato.vl.hub import HUB_PAIR_CONFIGS, HUB_TEXT_CONFIGS, load_hub_pairs, load_hub_texts
from gato.vl.sources import VL_FAMILY, EndOfText, PairSource, ScenePool, StoredPool

VL_PREFIX, TEXT_PREFIX = "vl.", "text."
TEXT_FAMILY = "text"
SCENES, CORPUS = "vl.scenes", "text.corpus"
HUB_MAX_ROWS = 20_000
"""Rows streamed from a hub config (the whole of Conceptual Captions is 3.3M images)."""
VL_WEIGHT, TEXT_WEIGHT = 8.0, 6.7


def is_language_task(name: str) -> bool:
    return name.startswith((VL_PREFIX, TEXT_PREFIX))


def language_family(name: str) -> str:
    if name.startswith(VL_PREFIX):
        return VL_FAMILY
    if name.startswith(TEXT_PREFIX):
        return TEXT_FAMILY
    raise ValueError(f"{name!r} is not a vision-language or text task")


def _help(name: str, data_dir) -> str:
    kind = "vl" if name.startswith(VL_PREFIX) else "text"
    hub = HUB_PAIR_CONFIGS if kind == "vl" else HUB_TEXT_CONFIGS
    builtin = SCENES if kind == "vl" else CORPUS
    return (
        f"unknown {kind} task {name!r}: no folder {Path(data_dir) / name}; the {kind} tasks are "
        f"{builtin}, {', '.join(kind + '.' + c for c in hub)} (the hub) and {kind}.NAME for a "
        f"folder <data_dir>/{kind}.NAME"
    )


@functools.lru_cache(maxsize=8)
def _pair_examples(name: str, data_dir: str) -> tuple:
    folder = Path(data_dir) / name
    config = name[len(VL_PREFIX) :]
    if folder.is_dir():
        if find_index(folder) is not None:
            return tuple(read_image_folder(folder))
        return tuple(load_hub_pairs(config, "train", local_path=folder))
    if config in HUB_PAIR_CONFIGS:
        return tuple(load_hub_pairs(config, "train", max_rows=HUB_MAX_ROWS))
    raise ValueError(_help(name, data_dir))


@functools.lru_cache(maxsize=8)
def _documents(name: str, data_dir: str) -> tuple[str, ...]:
    if name == CORPUS:
        from gato.vl.text_corpus import text_documents

        return tuple(text_documents("train"))
    folder = Path(data_dir) / name
    config = name[len(TEXT_PREFIX) :]
    if folder.is_dir():
        if any(folder.rglob("*.parquet")):
            return tuple(load_hub_texts(config, "train", local_path=folder))
        return tuple(read_text_folder(folder))
    if config in HUB_TEXT_CONFIGS:
        return tuple(load_hub_texts(config, "train", max_rows=HUB_MAX_ROWS))
    raise ValueError(_help(name, data_dir))


def load_language_source(
    name: str, data_dir, split: str, val_items: int, text_tokenizer=None
) -> PairSource | Documents:
    """The source of one ``vl.*`` or ``text.*`` task for the sampler's split (train or val)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be train or val, got {split!r}")
    if text_tokenizer is None:
        from gato.text import get_text_tokenizer

        text_tokenizer = get_text_tokenizer()
    family = language_family(name)
    if family == TEXT_FAMILY:
        texts = list(_documents(name, str(data_dir)))
        return Documents(texts, EndOfText(text_tokenizer), split, val_items)
    if name == SCENES:
        return PairSource(name, ScenePool(split), text_tokenizer)
    examples = _pair_examples(name, str(data_dir))
    n_val = split_counts(len(examples), val_items and max(val_items, len(examples) // 100))
    cut = len(examples) - n_val
    chosen = examples[cut:] if split == "val" else examples[:cut]
    return PairSource(name, StoredPool(chosen), text_tokenizer)
