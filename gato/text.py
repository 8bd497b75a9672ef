"""Text tokenization: SentencePiece with exactly 32000 pieces, ids in ``[0, 32000)``.

Gato encodes text with a SentencePiece model of 32000 subwords (GATO_SPEC.md section 1). The
model is trained by ``tokenizers/train_sentencepiece.py`` and shipped as
``tokenizers/gato_sp32000.model``. It uses byte fallback and no normalization, so every string
decodes back exactly. SentencePiece itself reads the character U+2581 (its whitespace marker) as a
space; this wrapper encodes that character as its UTF-8 bytes instead, so that it round-trips too.
No BOS/EOS tokens are added: sequences are assembled by the caller.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

DEFAULT_MODEL_NAME = "gato_sp32000.model"
TEXT_VOCAB_SIZE = 32000
ENV_VAR = "GATO_SPM_MODEL"
_META = "\u2581"  # SentencePiece's whitespace marker
# A serialized ModelProto field 3 (normalizer_spec) holding only add_dummy_prefix (field 3) = false.
# Protobuf merges a repeated message field into the earlier one, so appending these bytes to a
# model turns its dummy prefix off and leaves everything else as it was.
_NO_DUMMY_PREFIX = b"\x1a\x02\x18\x00"


def _candidate_paths() -> list[tuple[str, Path]]:
    """The places searched for the model, in order, with a description of each."""
    candidates = []
    env = os.environ.get(ENV_VAR)
    if env:
        candidates.append((f"${ENV_VAR}", Path(env).expanduser()))
    candidates.append(("installed data", Path(sys.prefix) / "share" / "gato" / DEFAULT_MODEL_NAME))
    candidates.append(
        (
            "source checkout",
            Path(__file__).resolve().parent.parent / "tokenizers" / DEFAULT_MODEL_NAME,
        )
    )
    return candidates


def default_model_path() -> Path:
    """The SentencePiece model to use when none is given.

    Resolution order: (1) the environment variable ``GATO_SPM_MODEL`` if set (it must then exist);
    (2) ``<sys.prefix>/share/gato/gato_sp32000.model`` (a non-editable pip install);
    (3) ``tokenizers/gato_sp32000.model`` of the source checkout.

    Raises:
        FileNotFoundError: no model at any of these places (the message lists them).
    """
    candidates = _candidate_paths()
    env = os.environ.get(ENV_VAR)
    if env:
        path = candidates[0][1]
        if not path.is_file():
            raise FileNotFoundError(f"${ENV_VAR}={env!r} does not name a SentencePiece model file")
        return path
    for _, path in candidates:
        if path.is_file():
            return path
    looked = "; ".join(f"{what}: {path}" for what, path in candidates)
    raise FileNotFoundError(
        f"SentencePiece model {DEFAULT_MODEL_NAME} not found (looked at {looked}). Set "
        f"${ENV_VAR}, or train it with `python tokenizers/train_sentencepiece.py`."
    )


class TextTokenizer:
    """SentencePiece text tokenizer; ids in ``[0, vocab_size)``, with ``vocab_size == 32000``.

    Picklable (the serialized model travels with it), so DataLoader workers can use it.
    """

    def __init__(self, model_path: str | os.PathLike[str] | None = None) -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        self.model_path = path
        self._load(path.read_bytes(), str(path))

    def _load(self, proto: bytes, where: str) -> None:
        sp = spm.SentencePieceProcessor()
        sp.LoadFromSerializedProto(proto)
        if sp.get_piece_size() != TEXT_VOCAB_SIZE:
            raise ValueError(
                f"{where}: the SentencePiece model has {sp.get_piece_size()} pieces; "
                f"Gato's text vocabulary needs exactly {TEXT_VOCAB_SIZE}"
            )
        # Text after a literal U+2581 is encoded without SentencePiece's dummy-prefix space.
        self._sp_no_prefix = spm.SentencePieceProcessor()
        self._sp_no_prefix.LoadFromSerializedProto(proto + _NO_DUMMY_PREFIX)
        self._meta_ids = [sp.piece_to_id(f"<0x{b:02X}>") for b in _META.encode("utf-8")]
        self._proto = proto
        self._sp = sp
        self.vocab_size: int = TEXT_VOCAB_SIZE

    def _encode_ids(self, text: str) -> list[int]:
        if _META not in text:
            return self._sp.encode(text)
        first, *rest = text.split(_META)
        ids = self._sp.encode(first)
        for segment in rest:
            ids += self._meta_ids
            ids += self._sp_no_prefix.encode(segment)
        return ids

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text``: a 1-D int64 array, no BOS/EOS."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return np.asarray(self._encode_ids(text), dtype=np.int64)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids of each text (see :meth:`encode`)."""
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of str, got a str")
        texts = list(texts)
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"encode_batch expects str items, got {type(t).__name__}")
        if any(_META in t for t in texts):
            batch = [self._encode_ids(t) for t in texts]
        else:
            batch = self._sp.encode(texts)
        return [np.asarray(ids, dtype=np.int64) for ids in batch]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of a list or 1-D integer array of ids in ``[0, vocab_size)``."""
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"decode expects a 1-D sequence of ids, got shape {arr.shape}")
        if arr.size == 0:
            return ""
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"decode expects integer ids, got dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= self.vocab_size)
        if bad.any():
            raise ValueError(
                f"text token ids must be in [0, {self.vocab_size}); got {arr[bad][:5].tolist()}"
            )
        return self._sp.decode(arr.tolist())

    @property
    def eos_id(self) -> int | None:
        """The end-of-text id (``</s>``; 2 in tokenizers/gato_sp32000.model), None if the model
        has none. Captions, answers and text documents end with it in training."""
        eos = int(self._sp.eos_id())
        return eos if eos >= 0 else None

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"TextTokenizer({str(self.model_path)!r}, vocab_size={self.vocab_size})"

    def __getstate__(self) -> dict[str, Any]:
        return {"model_path": str(self.model_path), "proto": self._proto}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.model_path = Path(state["model_path"])
        self._load(state["proto"], state["model_path"])


@functools.lru_cache(maxsize=8)
def _cached(path: Path) -> TextTokenizer:
    return TextTokenizer(path)


def get_text_tokenizer(model_path: str | os.PathLike[str] | None = None) -> TextTokenizer:
    """A shared :class:`TextTokenizer`, loaded once per (resolved) model path."""
    path = Path(model_path) if model_path is not None else default_model_path()
    return _cached(path.resolve())
