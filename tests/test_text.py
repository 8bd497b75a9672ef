"""Tests of gato/text.py (SentencePiece, 32000 pieces) and tokenizers/train_sentencepiece.py."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gato import text
from gato.text import DEFAULT_MODEL_NAME, TextTokenizer, default_model_path, get_text_tokenizer

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tokenizers" / "train_sentencepiece.py"
MODEL = REPO / "tokenizers" / DEFAULT_MODEL_NAME

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man riding a wave on top of a surfboard.",
    "Gato is a generalist agent: it plays Atari, captions images and stacks blocks.",
    'She said, "It\'s 3:45 p.m. on 2022-05-12; pay $1,234.56 (or 7%)!"',
    "Don't panic -- it's only 42.",
    "Line one\nLine two\n\nLine four after a blank line.\n",
    "  Two leading spaces, two trailing spaces.  ",
    "Tabs\tbetween\twords, and  double  spaces.",
    "e-mail me at someone@example.com or visit https://example.org/a?b=c&d=1#top",
    "def f(x):\n    return [i ** 2 for i in range(x)]  # squares",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159 -2.5e-3 1/2 50%",
    "UPPER CASE, lower case, MiXeD cAsE; semi-colons; 'single' and \"double\" quotes.",
    "Brackets (round) [square] {curly} <angle>; symbols ~ ` ! @ # $ ^ & * _ + = | \\ / ?",
]
UNICODE = [
    "naïve café, Zürich, Ångström, façade, résumé",
    "curly ‘quotes’ and “double quotes” — an em dash – an en dash… ellipsis",
    "Здравствуй, мир! Γειά σου Κόσμε! 你好，世界！こんにちは世界 안녕하세요",
    "emoji 🙂🤖🎮 and a flag 🇬🇧, ZWJ family 👩‍👩‍👧",
    "combining e\u0301, NBSP\u00a0here, ideographic\u3000space, ligature ﬁ, NUL \x00 byte",
    "Windows line ends\r\nand a form feed\x0c and a bell \x07",
    "SentencePiece's marker \u2581 is text too: \u2581\u2581x \u2581 y\u2581",
    "\u2581leading marker",
]
ENGLISH_WORDS = (
    "the of and to in is was he for it with as his on be at by I this had not are but from or "
    "have an they which one you were her all she there would their we him been has when who will "
    "more no if out so said what up its about into than them can only other new some could time "
    "these two may then do first any my now such like our over man me even most made after also "
    "robot agent arm block camera image game score reward policy transformer Atari DeepMind "
    "model learning token episode action observation 1 2 3 42 1024 2022 3.5"
).split()
PUNCT = [".", ",", ";", ":", "!", "?", "'", '"', "(", ")", "-", "--", "...", "'s", "n't"]


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer(MODEL)


def test_model_has_exactly_32000_pieces(tok: TextTokenizer) -> None:
    assert tok.vocab_size == 32000 == len(tok)
    assert spm.SentencePieceProcessor(model_file=str(MODEL)).get_piece_size() == 32000
    assert MODEL.stat().st_size < 2_000_000  # committed: keep it small


def test_ids_in_range_and_int64(tok: TextTokenizer) -> None:
    texts = SENTENCES + UNICODE + [" ".join(ENGLISH_WORDS)] + [text.__doc__, json.__doc__]
    for ids in tok.encode_batch(texts):
        assert ids.dtype == np.int64 and ids.ndim == 1 and ids.size > 0
        assert ids.min() >= 0 and ids.max() < 32000


def test_no_bos_eos_and_empty(tok: TextTokenizer) -> None:
    ids = tok.encode("hello world")
    assert 1 not in ids and 2 not in ids  # <s>, </s>
    assert tok.encode("").shape == (0,)
    assert tok.decode([]) == "" and tok.decode(np.zeros(0, np.int64)) == ""


@pytest.mark.parametrize("s", SENTENCES + UNICODE)
def test_exact_round_trip_fixed(tok: TextTokenizer, s: str) -> None:
    ids = tok.encode(s)
    assert tok.decode(ids) == s
    assert tok.decode(ids.tolist()) == s
    assert tok.decode(ids.astype(np.int32)) == s


def test_english_is_compact(tok: TextTokenizer) -> None:
    """Common English words are single pieces; ordinary prose needs few tokens per word."""
    assert len(tok.encode("The quick brown fox jumps over the lazy dog.")) <= 11
    prose = " ".join(SENTENCES[:3])
    assert len(tok.encode(prose)) <= 1.5 * len(prose.split())
    for word in ["the", "robot", "image", "action", "because", "water", "house"]:
        assert len(tok.encode(word)) == 1, word


def test_encode_batch_matches_encode(tok: TextTokenizer) -> None:
    texts = SENTENCES + UNICODE
    for s, ids in zip(texts, tok.encode_batch(texts), strict=True):
        np.testing.assert_array_equal(ids, tok.encode(s))
    assert tok.encode_batch([]) == []


english_text = st.lists(
    st.tuples(
        st.sampled_from(ENGLISH_WORDS + PUNCT),
        st.sampled_from([" ", " ", " ", "", "\n", "  ", "\t"]),
    ),
    max_size=40,
).map(lambda parts: "".join(w + sep for w, sep in parts))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=english_text, prefix=st.sampled_from(["", " ", "\n", "A"]))
def test_round_trip_english_property(tok: TextTokenizer, s: str, prefix: str) -> None:
    ids = tok.encode(prefix + s)
    assert ((ids >= 0) & (ids < 32000)).all()
    assert tok.decode(ids) == prefix + s


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
def test_round_trip_any_unicode_property(tok: TextTokenizer, s: str) -> None:
    """Byte fallback: every string (without lone surrogates) round-trips, U+2581 included."""
    assert tok.decode(tok.encode(s)) == s


def test_bad_inputs(tok: TextTokenizer) -> None:
    with pytest.raises(TypeError):
        tok.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tok.encode(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tok.encode(["a list"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tok.encode_batch("a str, not a batch")
    with pytest.raises(TypeError):
        tok.encode_batch(["ok", 3])  # type: ignore[list-item]
    for ids in ([32000], [-1], [5, 40000], np.array([0, 32000]), [[1, 2]], [1.5], np.array(7)):
        with pytest.raises(ValueError):
            tok.decode(ids)
    assert tok.decode([31999, 0]) is not None  # edges are valid


def test_pickle_round_trip(tok: TextTokenizer) -> None:
    clone = pickle.loads(pickle.dumps(tok))
    assert isinstance(clone, TextTokenizer) and clone.vocab_size == 32000
    for s in SENTENCES + UNICODE:
        np.testing.assert_array_equal(clone.encode(s), tok.encode(s))
        assert clone.decode(tok.encode(s)) == s


def test_wrong_piece_count_is_rejected(tmp_path: Path) -> None:
    sp = tmp_path / "small.model"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 20 + [" ".join(ENGLISH_WORDS)] * 5),
        model_prefix=str(tmp_path / "small"),
        vocab_size=400,
        byte_fallback=True,
        minloglevel=2,
    )
    with pytest.raises(ValueError, match="32000"):
        TextTokenizer(sp)


def test_default_model_path_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GATO_SPM_MODEL", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "empty-prefix"))
    assert default_model_path() == MODEL  # (3) the source checkout

    installed = tmp_path / "prefix" / "share" / "gato" / DEFAULT_MODEL_NAME
    installed.parent.mkdir(parents=True)
    shutil.copy(MODEL, installed)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    assert default_model_path() == installed  # (2) installed data wins over the checkout

    override = tmp_path / "elsewhere.model"
    shutil.copy(MODEL, override)
    monkeypatch.setenv("GATO_SPM_MODEL", str(override))
    assert default_model_path() == override  # (1) the environment variable wins
    assert TextTokenizer().model_path == override
    assert get_text_tokenizer().model_path == override.resolve()

    monkeypatch.setenv("GATO_SPM_MODEL", str(tmp_path / "missing.model"))
    with pytest.raises(FileNotFoundError, match="GATO_SPM_MODEL"):
        default_model_path()


def test_missing_model_names_the_places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GATO_SPM_MODEL", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    monkeypatch.setattr(text, "__file__", str(tmp_path / "src" / "gato" / "text.py"))
    with pytest.raises(FileNotFoundError) as err:
        default_model_path()
    message = str(err.value)
    assert str(tmp_path / "prefix" / "share" / "gato") in message
    assert str(tmp_path / "src" / "tokenizers") in message
    assert "GATO_SPM_MODEL" in message


def test_get_text_tokenizer_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATO_SPM_MODEL", raising=False)
    a = get_text_tokenizer(MODEL)
    assert get_text_tokenizer(str(MODEL)) is a
    assert get_text_tokenizer(MODEL.parent / ".." / "tokenizers" / DEFAULT_MODEL_NAME) is a


def test_script_help() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ["--corpus-from-debian", "--input", "--hf-dataset", "--hf-config", "--hf-split"]:
        assert flag in out
    for flag in ["--hf-text-column", "--hf-max-docs", "--vocab-size", "--output", "--corpus"]:
        assert flag in out


def _english_documents() -> list[str]:
    """A few hundred lines of real English prose available offline: stdlib docstrings."""
    import argparse
    import collections
    import functools
    import inspect
    import pathlib
    import subprocess as sp_mod
    import textwrap

    docs = []
    for mod in (argparse, collections, functools, inspect, json, os, pathlib, pickle, sp_mod):
        docs.append(inspect.getdoc(mod) or "")
        for _, obj in inspect.getmembers(mod):
            if callable(obj) and getattr(obj, "__module__", None) == mod.__name__:
                docs.append(inspect.getdoc(obj) or "")
    docs.append(textwrap.dedent("\n".join(SENTENCES)))
    return [d for d in docs if d.strip()]


@pytest.mark.slow
def test_train_script_on_local_hf_dataset(tmp_path: Path) -> None:
    """The --hf-dataset path on a local JSON-lines file, with a small vocabulary, offline."""
    docs = _english_documents()
    assert sum(d.count("\n") + 1 for d in docs) >= 300
    data = tmp_path / "english.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "content": d}) + "\n")
    out = tmp_path / "tiny.model"
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no writes to the user's cache
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--hf-dataset",
        str(data),
        "--hf-text-column",
        "content",
        "--hf-max-docs",
        "1000",
        "--vocab-size",
        "400",
        "--corpus",
        str(tmp_path / "corpus.txt"),
        "--output",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.is_file() and not out.with_suffix(".vocab").exists()
    assert (tmp_path / "corpus.txt").stat().st_size > 10_000
    sp = spm.SentencePieceProcessor(model_file=str(out))
    assert sp.get_piece_size() == 400
    for s in SENTENCES + UNICODE[:5]:
        ids = sp.encode(s)
        assert all(0 <= i < 400 for i in ids)
        assert sp.decode(ids) == s
    with pytest.raises(ValueError, match="32000"):
        TextTokenizer(out)


def test_eos_id_is_the_end_of_text_the_sources_write():
    from gato.vl.sources import END_OF_TEXT_ID

    tok = get_text_tokenizer()
    assert tok.eos_id == END_OF_TEXT_ID == 2
    assert tok.decode([tok.eos_id]) == ""  # a control piece: it ends text, it is not text
