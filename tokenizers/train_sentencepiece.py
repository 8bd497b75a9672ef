#!/usr/bin/env python3
"""Train Gato's text tokenizer: a SentencePiece model with exactly 32000 pieces.

Gato tokenizes text with SentencePiece into 32000 subwords, ids ``[0, 32000)`` (GATO_SPEC.md
section 1). This script builds a plain-text corpus, then trains the model on it and writes only
the ``.model`` file (the trainer's in-memory writer is used, so no ``.vocab`` appears unless
``--write-vocab`` asks for it).

Corpus sources (any combination; with none given, the Debian sources are used):

* ``--corpus-from-debian``: English text installed by Debian packages, readable without internet
  (``apt-get install python3-doc fortunes fortunes-min dict-wn manpages manpages-dev``):
  Python's HTML documentation converted to plain text with :mod:`html.parser`, the manual pages of
  ``manpages``/``manpages-dev`` rendered with ``man``, the fortune cookie files, and WordNet's
  glosses and example sentences. Repeated lines are written once.
* ``--input PATH``: local UTF-8 text files, or folders searched recursively for ``*.txt``.
* ``--hf-dataset NAME_OR_PATH``: a Hugging Face text dataset read with the ``datasets`` library,
  e.g. Wikipedia (``wikimedia/wikipedia --hf-config 20231101.en``), or a local data file
  (``.jsonl``/``.json``/``.parquet``/``.csv``/``.txt``), a folder of them, or a folder written by
  ``Dataset.save_to_disk``.

The corpus is written to ``--corpus`` first (one line per paragraph), then SentencePiece trains
on it. See tokenizers/README.md for the command that produced the committed model.

Example::

    python tokenizers/train_sentencepiece.py --corpus-from-debian
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

# The corpus builders live beside this script (tokenizers/ is not a package).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_sources import (  # noqa: E402
    DEFAULT_CORPUS,
    DEFAULT_OUTPUT,
    FORTUNE_DIR,
    MAN_PACKAGES,
    PYTHON_DOC_GLOB,
    WORDNET_DICT,
    build_corpus,
)

# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def train(args: argparse.Namespace, corpus: Path) -> bytes:
    """Train SentencePiece on ``corpus``; returns the serialized model."""
    import sentencepiece as spm

    spm.set_random_generator_seed(args.seed)
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_writer=writer,
        model_type=args.model_type,
        vocab_size=args.vocab_size,
        hard_vocab_limit=True,  # exactly vocab_size pieces, or an error
        character_coverage=args.character_coverage,
        byte_fallback=True,  # any string round-trips: unknown characters become UTF-8 bytes
        # Exactly reversible text: no Unicode normalization, whitespace kept as it is.
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        max_sentencepiece_length=16,
        max_sentence_length=args.max_sentence_length,
        input_sentence_size=args.input_sentence_size,
        shuffle_input_sentence=True,
        num_threads=args.num_threads,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=1,
    )
    return writer.getvalue()


def check_model(model: bytes, vocab_size: int) -> None:
    """The model has exactly ``vocab_size`` pieces and English text round-trips exactly."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    if sp.get_piece_size() != vocab_size:
        raise SystemExit(f"trained {sp.get_piece_size()} pieces, expected {vocab_size}")
    samples = [
        "The quick brown fox jumps over the lazy dog.",
        'She said, "It\'s 3:45 p.m. on 2022-05-12; pay $1,234.56 (or 7%)!"',
        "  two leading spaces, a\ttab,\nand a newline.",
        "naïve café — Zürich, 東京, emoji 🙂",
    ]
    for s in samples:
        ids = sp.encode(s)
        if sp.decode(ids) != s or not all(0 <= i < vocab_size for i in ids):
            raise SystemExit(f"round trip failed for {s!r}: {sp.decode(ids)!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Train Gato's SentencePiece text tokenizer (exactly --vocab-size pieces, default 32000)"
            " on English text from Debian packages, local files and/or a Hugging Face dataset."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = p.add_argument_group("corpus sources (with none given, --corpus-from-debian is used)")
    src.add_argument(
        "--corpus-from-debian",
        action="store_true",
        help="extract English text installed by Debian packages: Python's HTML documentation "
        f"({PYTHON_DOC_GLOB}, package python3-doc), the manual pages of {', '.join(MAN_PACKAGES)}"
        f" rendered with `man`, the fortune files in {FORTUNE_DIR} (fortunes, fortunes-min) and "
        f"WordNet's glosses and examples ({WORDNET_DICT}, dict-wn); repeated lines are dropped",
    )
    src.add_argument(
        "--input",
        nargs="+",
        metavar="PATH",
        help="local UTF-8 text files, or folders searched recursively for *.txt",
    )
    src.add_argument(
        "--hf-dataset",
        metavar="NAME_OR_PATH",
        help="a Hugging Face dataset read with `datasets` (needs internet for hub names, e.g. "
        "wikimedia/wikipedia), or a local .jsonl/.json/.parquet/.csv/.txt file, a folder of "
        "such files, or a folder written by Dataset.save_to_disk",
    )
    src.add_argument("--hf-config", help="dataset configuration, e.g. 20231101.en for Wikipedia")
    src.add_argument(
        "--hf-data-files",
        nargs="+",
        metavar="PATTERN",
        help="read only these files of a hub dataset (glob patterns inside its repository, e.g. "
        "en/*.parquet), for datasets that are not organized in configurations",
    )
    src.add_argument("--hf-split", default="train", help="dataset split to read")
    src.add_argument("--hf-text-column", default="text", help="column holding the documents")
    src.add_argument(
        "--hf-max-docs",
        type=int,
        default=None,
        help="read at most this many documents (bounds the download and the corpus size)",
    )
    src.add_argument(
        "--hf-streaming",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stream the dataset instead of downloading it whole (ignored for save_to_disk)",
    )
    out = p.add_argument_group("outputs")
    out.add_argument(
        "--corpus",
        default=str(DEFAULT_CORPUS),
        help="where the plain-text corpus is written (one paragraph a line); not committed",
    )
    out.add_argument(
        "--reuse-corpus",
        action="store_true",
        help="train on an existing --corpus file instead of extracting it again",
    )
    out.add_argument("--output", default=str(DEFAULT_OUTPUT), help="the .model file to write")
    out.add_argument(
        "--write-vocab",
        action="store_true",
        help="also write a human-readable OUTPUT.vocab (piece and score per line); not committed",
    )
    tr = p.add_argument_group("trainer")
    tr.add_argument(
        "--vocab-size",
        type=int,
        default=32000,
        help="number of pieces; Gato uses 32000 (smaller values are for tests only)",
    )
    tr.add_argument(
        "--model-type",
        choices=["unigram", "bpe"],
        default="unigram",
        help="SentencePiece algorithm",
    )
    tr.add_argument(
        "--character-coverage",
        type=float,
        default=0.9995,
        help="share of the corpus's character occurrences covered by single-character pieces; "
        "the rarest characters are encoded as UTF-8 bytes instead (byte fallback)",
    )
    tr.add_argument(
        "--input-sentence-size",
        type=int,
        default=2_000_000,
        help="train on at most this many lines, sampled at random (bounds memory)",
    )
    tr.add_argument(
        "--max-sentence-length",
        type=int,
        default=16384,
        help="lines longer than this many bytes are skipped by the trainer",
    )
    tr.add_argument("--num-threads", type=int, default=2, help="trainer and extraction threads")
    tr.add_argument("--seed", type=int, default=0, help="seed of SentencePiece's sampling")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    corpus = Path(args.corpus)
    start = time.perf_counter()
    if args.reuse_corpus:
        if not corpus.is_file():
            raise SystemExit(f"--reuse-corpus: {corpus} does not exist")
        print(f"reusing corpus {corpus} ({corpus.stat().st_size / 1e6:.1f} MB)")
    else:
        build_corpus(args)
    extracted = time.perf_counter()
    model = train(args, corpus)
    check_model(model, args.vocab_size)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(model)
    if args.write_vocab:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_proto=model)
        with open(output.with_suffix(".vocab"), "w", encoding="utf-8") as f:
            for i in range(sp.get_piece_size()):
                f.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i)}\n")
    done = time.perf_counter()
    print(
        f"wrote {output} ({len(model) / 1e6:.2f} MB, {args.vocab_size} pieces); corpus "
        f"{extracted - start:.0f} s, training {done - extracted:.0f} s"
    )


if __name__ == "__main__":
    main()
