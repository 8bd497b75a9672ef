"""Build gato/data/text_corpus.jsonl.gz: the text corpus that ships with the package.

It is a small part of the texts the SentencePiece model was trained on (tokenizers/README.md),
keeping only sources whose licences allow redistribution (gato/data/TEXT_CORPUS.md):

- the Python 3.11 Tutorial and FAQ (Debian ``python3-doc``; PSF License Version 2), each page cut
  into documents of whole paragraphs of about ``--chunk-chars`` characters;
- WordNet 3.0 entries (Debian ``dict-wn``; the WordNet 3.0 licence), every ``--wordnet-every``-th
  headword with its glosses and examples ("headword: gloss; gloss."), ``--entries-per-doc`` a
  document.

Every 10th document (index % 10 == 9, in file order) is the held-out test split. Deterministic:
the same packages give a byte-identical file.

    apt-get install python3-doc dict-wn
    .venv/bin/python tokenizers/build_text_corpus.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import corpus_sources as cs  # noqa: E402

OUTPUT = HERE.parent / "gato" / "data" / "text_corpus.jsonl.gz"
TEST_EVERY = 10


def chunks(lines: list[str], size: int) -> list[str]:
    """Consecutive lines joined by newlines, cut between lines at about `size` characters."""
    out, current, n = [], [], 0
    for line in lines:
        current.append(line)
        n += len(line) + 1
        if n >= size:
            out.append("\n".join(current))
            current, n = [], 0
    if current:
        out.append("\n".join(current))
    return out


def python_docs(chunk_chars: int) -> list[dict]:
    roots = sorted(Path("/usr/share/doc").glob("python3*/html"))
    if not roots:
        raise SystemExit("no Python HTML documentation: apt-get install python3-doc")
    docs = []
    for sub in ("tutorial", "faq"):
        for page in sorted((roots[-1] / sub).glob("*.html")):
            if page.name == "index.html":
                continue
            lines = [line for line in cs.html_to_lines(page) if line.strip()]
            for i, text in enumerate(chunks(lines, chunk_chars)):
                docs.append({"text": text, "source": f"python-doc/{sub}/{page.stem}#{i}"})
    return docs


def wordnet_entries(path: Path) -> list[tuple[str, str]]:
    """(headword, 'gloss; gloss') of every WordNet headword (synonym lists dropped)."""
    entries, head, senses, current = [], None, [], []

    def flush_sense() -> None:
        if current:
            text = cs._WN_REFS.sub("", " ".join(current)).replace("{", "").replace("}", "")
            senses.append(" ".join(text.split()))
            current.clear()

    def flush_entry() -> None:
        flush_sense()
        if head and senses and not head.startswith("00"):
            entries.append((head, "; ".join(senses)))
        senses.clear()

    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line[:1].isspace():
                flush_entry()
                head = line.strip()
                continue
            m = cs._WN_SENSE.match(line)
            if m:
                flush_sense()
                current.append(line[m.end() :].strip())
            elif current:
                current.append(line.strip())
    flush_entry()
    return entries


def wordnet_docs(every: int, per_doc: int) -> list[dict]:
    if not cs.WORDNET_DICT.is_file():
        raise SystemExit(f"no {cs.WORDNET_DICT}: apt-get install dict-wn")
    entries = wordnet_entries(cs.WORDNET_DICT)[::every]
    docs = []
    for i in range(0, len(entries), per_doc):
        group = entries[i : i + per_doc]
        text = "\n".join(f"{head}: {gloss}." for head, gloss in group)
        docs.append({"text": text, "source": f"wordnet/{group[0][0]}"})
    return docs


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunk-chars", type=int, default=3000)
    p.add_argument("--wordnet-every", type=int, default=100)
    p.add_argument("--entries-per-doc", type=int, default=30)
    p.add_argument("--output", default=str(OUTPUT))
    args = p.parse_args(argv)
    docs = python_docs(args.chunk_chars) + wordnet_docs(args.wordnet_every, args.entries_per_doc)
    for i, d in enumerate(docs):
        d["split"] = "test" if i % TEST_EVERY == TEST_EVERY - 1 else "train"
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # mtime 0 and no file name in the header: the same input gives the same bytes.
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        for d in docs:
            f.write((json.dumps(d, ensure_ascii=False) + "\n").encode("utf-8"))
    chars = sum(len(d["text"]) for d in docs)
    print(f"wrote {len(docs)} documents ({chars} characters) to {out}")


if __name__ == "__main__":
    main()
