"""Where training tokens come from: a task's episodes, or text documents, tokenized lazily.

A :class:`TaskEpisodes` keeps the raw episodes of one task (uint8 frames, float32 vectors, strings)
and, per episode, the cumulative token offset of every timestep. A token window ``[start, stop)``
is served by tokenizing only the timesteps that overlap it (``tokenize_episode(first_timestep=)``)
and cutting, which gives exactly the tokens of cutting the fully tokenized episode. Tokenizing
whole episodes up front is not an option for images: a 20k-step Pong episode is 500k patches of
768 float32 = 1.5 GB, against 130 MB of uint8 frames.

A :class:`Documents` holds text documents as token ids (uint16: ids < 32000), every token a target.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gato.datasets import MAKE_DATA_HINT, read_metadata, task_dir
from gato.jat import Episode, episode_observations, shard_episode_indices, shard_paths
from gato.sequence import TokenSequence
from gato.serialize import document_sequence, tokenize_episode
from gato.shards import read_table
from gato.specs import ImageSpec, TextSpec, ordered_leaves, spec_from_dict


class MemoEncoder:
    """A text tokenizer that encodes each distinct string once (BabyAI repeats its mission at
    every step of an episode, and across episodes). Picklable if the wrapped tokenizer is."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, text: str) -> np.ndarray:
        ids = self._cache.get(text)
        if ids is None:
            ids = self._cache[text] = self.tokenizer.encode(text)
        return ids


def split_counts(n: int, val_episodes: int) -> int:
    """How many of n items (the last ones) are held out for validation: none if n < 2, and never
    all of them (at least one stays for training)."""
    return 0 if n < 2 else min(max(val_episodes, 0), n - 1)


def list_complete_tasks(data_dir: str | os.PathLike) -> list[str]:
    """Task folders of ``data_dir`` whose collection finished (``complete`` in the metadata)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist; {MAKE_DATA_HINT}")
    out = []
    for path in sorted(root.iterdir()):
        meta = path / "metadata.json"
        if meta.is_file():
            with open(meta) as f:
                if json.load(f).get("complete"):
                    out.append(path.name)
    return out


def fixed_timestep_tokens(obs_spec, action_spec) -> int:
    """Tokens of one timestep apart from its text, as gato.serialize lays it out: the image
    patches, the tensor elements, '|' and the action."""
    return (
        1
        + action_spec.size
        + sum(
            leaf.num_patches if isinstance(leaf, ImageSpec) else leaf.size
            for _, leaf in ordered_leaves(obs_spec)
            if not isinstance(leaf, TextSpec)
        )
    )


class TaskEpisodes:
    """One task's episodes of one split, with per-timestep token offsets; tokenized on demand."""

    def __init__(
        self,
        task: str,
        family: str,
        obs_spec,
        action_spec,
        episodes: Sequence[Episode],
        text_tokenizer=None,
    ) -> None:
        self.task, self.family = task, family
        self.obs_spec, self.action_spec = obs_spec, action_spec
        self.text_tokenizer = text_tokenizer
        self.indices = [int(ep.episode_index) for ep in episodes]  # episode_index of each
        self.position = {index: i for i, index in enumerate(self.indices)}
        leaves = ordered_leaves(obs_spec)
        self._text_keys = [path for path, leaf in leaves if isinstance(leaf, TextSpec)]
        if self._text_keys and text_tokenizer is None:
            raise ValueError(f"{task}: text observations need a text tokenizer")
        self.fixed_tokens = fixed_timestep_tokens(obs_spec, action_spec)
        self._observations = []  # per episode: stacked observation leaves (views, no copies)
        self._actions = []
        self.offsets = []  # per episode: (T + 1,) int64 token offset of each timestep, then total
        for ep in episodes:
            obs = episode_observations(ep, obs_spec)
            self._observations.append(obs)
            self._actions.append(np.asarray(ep.actions).reshape(ep.num_steps, *action_spec.shape))
            lengths = np.full(ep.num_steps, self.fixed_tokens, np.int64)
            for path in self._text_keys:
                value = obs
                for key in path:
                    value = value[key]
                lengths += np.fromiter((len(text_tokenizer.encode(s)) for s in value), np.int64)
            self.offsets.append(np.concatenate([[0], np.cumsum(lengths)]))

    def __len__(self) -> int:
        return len(self.offsets)

    def num_tokens(self, i: int) -> int:
        return int(self.offsets[i][-1])

    def longest_timestep(self) -> int:
        """Tokens of the longest timestep of these episodes (0 if there are none)."""
        return max((int(np.diff(o).max()) for o in self.offsets if len(o) > 1), default=0)

    def tokens(self, i: int, start: int, stop: int) -> TokenSequence:
        """Tokens [start, stop) of episode i, tokenizing only the timesteps they touch."""
        offsets = self.offsets[i]
        if not 0 <= start <= stop <= offsets[-1]:
            raise ValueError(f"window [{start}, {stop}) outside episode of {offsets[-1]} tokens")
        # The timestep holding `start` (the last one for an empty window at the very end) ...
        first = min(int(np.searchsorted(offsets, start, side="right")) - 1, len(offsets) - 2)
        # ... through the first timestep that starts at or after `stop`, exclusive.
        last = max(int(np.searchsorted(offsets, stop, side="left")), first + 1)
        seq = tokenize_episode(
            _slice_steps(self._observations[i], first, last),
            self._actions[i][first:last],
            self.obs_spec,
            self.action_spec,
            self.text_tokenizer,
            first_timestep=first,
        )
        base = int(offsets[first])
        return seq.window(start - base, stop - base)


def _slice_steps(obs, first: int, last: int):
    if isinstance(obs, dict):
        return {k: _slice_steps(v, first, last) for k, v in obs.items()}
    return obs[first:last]  # arrays and lists of strings alike


def load_task(
    task: str, data_dir: str | os.PathLike, split: str, val_episodes: int, text_tokenizer=None
) -> TaskEpisodes:
    """The filtered episodes of one split of a collected task (see :func:`split_counts`).

    Only the split's episodes are decoded (PNG frames are the expensive part of loading).
    Specs and family come from the task's metadata, so no environment package is imported.
    """
    meta = read_metadata(task, data_dir)  # names `make data` when the task is missing
    folder = task_dir(task, data_dir)
    if not meta.get("complete"):
        raise RuntimeError(
            f"the collection of {task!r} in {folder} was interrupted; run the same "
            "`python -m gato.collect` command again to resume it"
        )
    filtered = sorted(int(i) for i in meta["filtered_indices"])
    n_val = split_counts(len(filtered), val_episodes)
    wanted = (
        filtered[len(filtered) - n_val :] if split == "val" else filtered[: len(filtered) - n_val]
    )
    todo = set(wanted)
    found: dict[int, Episode] = {}
    for path in shard_paths(folder):
        if not todo.intersection(shard_episode_indices(path)):
            continue
        for row in read_table(path).to_pylist():  # a damaged shard: an error naming it
            index = int(row["episode_index"])
            if index in todo and index not in found:  # the first copy of an index wins
                found[index] = Episode.from_row(row)
    missing = sorted(todo - set(found))
    if missing:
        raise FileNotFoundError(
            f"{folder}: metadata lists episodes {missing[:5]} that no shard holds; {MAKE_DATA_HINT}"
        )
    obs_spec = spec_from_dict(meta["obs_spec"])
    action_spec = spec_from_dict(meta["action_spec"])
    if text_tokenizer is None and any(isinstance(x, TextSpec) for _, x in ordered_leaves(obs_spec)):
        from gato.text import get_text_tokenizer

        text_tokenizer = MemoEncoder(get_text_tokenizer())
    episodes = [found[i] for i in wanted if found[i].num_steps > 0]  # nothing to sample in 0 steps
    return TaskEpisodes(task, meta["family"], obs_spec, action_spec, episodes, text_tokenizer)


# ------------------------------------------------------------------------------ documents


def read_documents(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Documents of text files: a ``.jsonl`` file holds one per line (its "text" field), any
    other file is one document. Empty documents are dropped."""
    docs = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"text file {path} does not exist")
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                        raise ValueError(f"{path}:{n}: expected a JSON object with a 'text' string")
                    docs.append(row["text"])
        else:
            docs.append(path.read_text(encoding="utf-8"))
    return [d for d in docs if d]


class Documents:
    """Tokenized text documents of one split (the last ``val`` documents are validation)."""

    def __init__(self, texts: Sequence[str], text_tokenizer, split: str, val_documents: int):
        n_val = split_counts(len(texts), val_documents)
        first, stop = (
            (len(texts) - n_val, len(texts)) if split == "val" else (0, len(texts) - n_val)
        )
        self.indices = list(range(first, stop))  # document numbers (across text_files)
        self.position = {index: i for i, index in enumerate(self.indices)}
        self.ids = [text_tokenizer.encode(texts[i]).astype(np.uint16) for i in range(first, stop)]
        lengths = np.array([len(x) for x in self.ids], np.float64)
        if lengths.sum() == 0:
            raise ValueError(f"the {split} text documents hold no tokens")
        # A document is drawn in proportion to its tokens: every corpus token is equally likely
        # to be sampled, rather than short documents being over-represented.
        self.probabilities = lengths / lengths.sum()

    def __len__(self) -> int:
        return len(self.ids)

    def num_tokens(self, i: int) -> int:
        return len(self.ids[i])

    def tokens(self, i: int, start: int, stop: int) -> TokenSequence:
        """Tokens [start, stop) of document i, laid out as ``tokenize_document`` does."""
        return document_sequence(self.ids[i][start:stop])
