"""Corpus extraction for tokenizers/train_sentencepiece.py: English text from Debian packages,
local files and Hugging Face datasets, written as one plain-text file (one line per paragraph,
repeated lines once). Not a package module: the training script imports it from this folder.
"""

from __future__ import annotations

import argparse
import gzip
import html.parser
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "gato_sp32000.model"
DEFAULT_CORPUS = HERE / "corpus" / "gato_text_corpus.txt"

# Debian locations of the default corpus.
PYTHON_DOC_GLOB = "/usr/share/doc/python3*/html"
MAN_PACKAGES = ("manpages", "manpages-dev")
FORTUNE_DIR = Path("/usr/share/games/fortunes")
WORDNET_DICT = Path("/usr/share/dictd/wn.dict.dz")

# Python doc pages that are indices or tables of contents, not prose.
_PYDOC_SKIP = re.compile(r"^(genindex.*|contents|py-modindex|search|index)\.html$")
_BLOCK_TAGS = frozenset(
    "p div pre h1 h2 h3 h4 h5 h6 li dt dd tr table section blockquote ul ol dl br hr "
    "figcaption caption th td".split()
)
_SKIP_TAGS = frozenset({"script", "style"})
_BOX_DRAWING = re.compile("[\u2500-\u257f]")  # table borders of rendered manual pages
_RULE_LINE = re.compile(r"^[\s\-_=*~.+|]*$")
_SPACE_RUN = re.compile(r"[ \t]{2,}")
_WN_SENSE = re.compile(r"^\s+(?:(?:n|v|adj|adv)\s+)?\d+:\s*")
_WN_REFS = re.compile(r"\[(?:syn|ant):[^\]]*\]")


# --------------------------------------------------------------------------------------------
# Corpus extraction
# --------------------------------------------------------------------------------------------


class _SphinxText(html.parser.HTMLParser):
    """Plain text of the main body of a Sphinx HTML page (navigation, scripts, markup dropped)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._main_depth = 0  # > 0 while inside <div role="main">
        self._skip_depth = 0  # > 0 while inside <script>/<style>/headerlink anchors
        self._pre_depth = 0
        self._blocks: list[str] = []
        self._current: list[str] = []

    def _flush(self) -> None:
        text = "".join(self._current)
        self._current = []
        if self._pre_depth:
            self._blocks.extend(line.rstrip() for line in text.split("\n"))
        else:
            text = " ".join(text.split())
            if text:
                self._blocks.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if self._main_depth == 0:
            if tag == "div" and attr.get("role") == "main":
                self._main_depth = 1
            return
        if tag == "div":
            self._main_depth += 1
        if tag in _SKIP_TAGS or (tag == "a" and "headerlink" in (attr.get("class") or "")):
            self._skip_depth += 1
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag == "pre":
            self._pre_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._main_depth == 0:
            return
        if tag in _SKIP_TAGS or (tag == "a" and self._skip_depth):
            self._skip_depth = max(0, self._skip_depth - 1)
        if tag in _BLOCK_TAGS:
            self._flush()
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        if tag == "div":
            self._main_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._main_depth and not self._skip_depth:
            self._current.append(data)

    def text_lines(self) -> list[str]:
        self._flush()
        return self._blocks


def html_to_lines(path: Path) -> list[str]:
    """Paragraphs (and code lines) of a Sphinx HTML page."""
    parser = _SphinxText()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser.text_lines()


def python_doc_files() -> list[Path]:
    """The HTML pages of the newest installed Python documentation (Debian ``python3-doc``)."""
    roots = sorted(Path("/").glob(PYTHON_DOC_GLOB.lstrip("/")))
    if not roots:
        return []
    root = roots[-1]
    return sorted(
        p
        for p in root.rglob("*.html")
        if not any(part.startswith("_") for part in p.relative_to(root).parts)
        and not (p.parent == root and _PYDOC_SKIP.match(p.name))
    )


def man_page_files(packages: Iterable[str] = MAN_PACKAGES) -> list[Path]:
    """English manual pages shipped by ``packages`` (no symlinks and no ``.so`` redirects)."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", *packages], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:  # not a Debian system
        return []
    files = []
    for line in sorted(set(listing.splitlines())):
        path = Path(line)
        if not re.fullmatch(r"/usr/share/man/man[1-9]/[^/]+", line) or not path.is_file():
            continue
        if path.is_symlink():
            continue
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            if f.read(4) == ".so ":
                continue
        files.append(path)
    return files


def man_to_lines(path: Path) -> list[str]:
    """Render a manual page with ``man`` as unjustified, unhyphenated text, one paragraph a line."""
    env = dict(os.environ, MANWIDTH="1000", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.pop("MAN_KEEP_FORMATTING", None)
    out = subprocess.run(
        ["man", "--nh", "--nj", "-l", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        check=False,
    ).stdout
    lines = out.splitlines()[1:-1]  # drop the header and footer lines
    result = []
    for line in lines:
        # Indentation and column alignment are layout, not text: one space between words.
        line = _SPACE_RUN.sub(" ", _BOX_DRAWING.sub(" ", line).strip())
        result.append("" if _RULE_LINE.match(line) else line)
    return result


def fortune_files() -> list[Path]:
    """The fortune cookie files (Debian ``fortunes``, ``fortunes-min``)."""
    if not FORTUNE_DIR.is_dir():
        return []
    return sorted(
        p
        for p in FORTUNE_DIR.iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix not in {".dat", ".u8"}
    )


def fortune_to_lines(path: Path) -> list[str]:
    return [
        line.rstrip()
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.strip() != "%"
    ]


def wordnet_files() -> list[Path]:
    """WordNet's dictionary (Debian ``dict-wn``), if installed."""
    return [WORDNET_DICT] if WORDNET_DICT.is_file() else []


def wordnet_to_lines(path: Path) -> list[str]:
    """WordNet glosses with their example sentences, one sense a line.

    The dictd file holds a headword at column 0, then indented senses (``n 1: gloss; "example"
    [syn: {...}]``) wrapped over several lines. Headwords and synonym/antonym lists (word lists,
    not text) are dropped; repeated glosses are removed later with all duplicate lines.
    """
    senses: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            text = _WN_REFS.sub("", " ".join(current)).replace("{", "").replace("}", "")
            senses.append(" ".join(text.split()))
            current.clear()

    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:  # dictzip is gzip
        for line in f:
            if not line[:1].isspace():  # a headword
                flush()
                continue
            m = _WN_SENSE.match(line)
            if m:
                flush()
                current.append(line[m.end() :].strip())
            elif current:
                current.append(line.strip())
    flush()
    return senses


def text_file_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def hf_documents(
    name: str,
    config: str | None,
    split: str,
    text_column: str,
    max_docs: int | None,
    streaming: bool,
    data_files: list[str] | None = None,
) -> Iterator[str]:
    """Texts of a Hugging Face dataset: a hub name, a local data file/folder, or save_to_disk."""
    import datasets

    path = Path(name)
    saved = (path / "state.json").exists() or (path / "dataset_dict.json").exists()
    if path.is_dir() and saved:
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
    elif path.is_file():
        suffix = path.suffix.lower().lstrip(".")
        builder = {"jsonl": "json", "txt": "text", "parquet": "parquet", "csv": "csv"}.get(
            suffix, suffix
        )
        ds = datasets.load_dataset(
            builder, data_files={split: str(path)}, split=split, streaming=streaming
        )
    else:
        ds = datasets.load_dataset(
            name, config, data_files=data_files, split=split, streaming=streaming
        )
    for i, row in enumerate(ds):
        if max_docs is not None and i >= max_docs:
            break
        text = row[text_column]
        if isinstance(text, str):
            yield text


def _write_lines(out: io.TextIOBase, lines: Iterable[str], seen: set[int]) -> tuple[int, int]:
    """Write the non-empty lines not written before; returns (lines, bytes) written."""
    n_lines = n_bytes = 0
    for line in lines:
        line = line.rstrip()
        key = hash(line)
        if not line.strip() or key in seen:
            continue
        seen.add(key)
        out.write(line + "\n")
        n_lines += 1
        n_bytes += len(line.encode("utf-8")) + 1
    return n_lines, n_bytes


def build_corpus(args: argparse.Namespace) -> tuple[int, int]:
    """Write the plain-text corpus; returns its (lines, bytes)."""
    from tqdm import tqdm

    use_debian = args.corpus_from_debian or not (args.input or args.hf_dataset)
    jobs: list[tuple[str, list[Path], object]] = []
    if use_debian:
        jobs.append(("python docs", python_doc_files(), html_to_lines))
        jobs.append(("man pages", man_page_files(), man_to_lines))
        jobs.append(("fortunes", fortune_files(), fortune_to_lines))
        jobs.append(("wordnet", wordnet_files(), wordnet_to_lines))
        missing = [name for name, files, _ in jobs if not files]
        if missing:
            print(
                f"warning: no files found for {missing}; install them with "
                "`apt-get install python3-doc fortunes fortunes-min dict-wn manpages manpages-dev`",
                file=sys.stderr,
            )
    local: list[Path] = []
    for item in args.input or []:
        p = Path(item)
        if p.is_dir():
            local.extend(sorted(p.rglob("*.txt")))
        elif p.is_file():
            local.append(p)
        else:
            raise FileNotFoundError(f"--input {item}: no such file or folder")
    corpus = Path(args.corpus)
    # Each file once, and never the corpus being written.
    local = [p for p in dict.fromkeys(p.resolve() for p in local) if p != corpus.resolve()]
    if local:
        jobs.append(("local files", local, text_file_lines))

    corpus.parent.mkdir(parents=True, exist_ok=True)
    total_lines = total_bytes = 0
    seen: set[int] = set()  # hashes of the lines written: boilerplate and repeats are dropped
    with open(corpus, "w", encoding="utf-8") as out:
        for name, files, fn in jobs:
            if not files:
                continue
            n_lines = n_bytes = 0
            with ThreadPoolExecutor(max_workers=args.num_threads) as pool:
                for lines in tqdm(pool.map(fn, files), total=len(files), desc=name, unit="file"):
                    nl, nb = _write_lines(out, lines, seen)
                    n_lines += nl
                    n_bytes += nb
            print(f"{name}: {len(files)} files, {n_lines} lines, {n_bytes / 1e6:.1f} MB")
            total_lines += n_lines
            total_bytes += n_bytes
        if args.hf_dataset:
            docs = hf_documents(
                args.hf_dataset,
                args.hf_config,
                args.hf_split,
                args.hf_text_column,
                args.hf_max_docs,
                args.hf_streaming,
                args.hf_data_files,
            )
            n_docs = n_lines = n_bytes = 0
            for doc in tqdm(docs, total=args.hf_max_docs, desc=args.hf_dataset, unit="doc"):
                nl, nb = _write_lines(out, doc.splitlines(), seen)
                n_docs += 1
                n_lines += nl
                n_bytes += nb
            print(f"{args.hf_dataset}: {n_docs} documents, {n_lines} lines, {n_bytes / 1e6:.1f} MB")
            total_lines += n_lines
            total_bytes += n_bytes
    print(f"corpus {corpus}: {total_lines} lines, {total_bytes / 1e6:.1f} MB")
    if total_lines == 0:
        raise SystemExit("the corpus is empty: nothing to train on")
    return total_lines, total_bytes
