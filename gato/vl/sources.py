"""Vision-language training rows: five (image, text) pairs, padded or randomly cropped to L.

GATO_SPEC.md sections 3, 4 and 12 [paper]: a vision-language sequence is five (image, text)
pairs, each laid out as ``[image patches, text]`` by
:func:`gato.serialize.tokenize_image_text_pairs`, concatenated; only the text is a loss target.
A row of more than L tokens is cropped to L at a uniformly random offset (the paper's
behaviour: the sampler cuts the window, as it does for episodes), a shorter one is right-padded.
Each pair takes local positions 0 .. n - 1 and its own timestep index (0 .. 4).

[decision] Every text (of a pair, and every document of a ``text.*`` task) ends with
SentencePiece's end of text ``</s>`` (id 2), a loss target like the text: without it the token
after a caption is the next image's first patch, which is never a target, so a model would not
learn where a caption or an answer ends (``gato.generate`` stops at it).

A row is a pure function of an integer key (drawn by the sampler from (seed, split, step, row)):
the key seeds the choice of five examples, uniformly with replacement, among the split's.
:class:`PairSource` serves rows from a pool of examples:

- :class:`ScenePool`: generated scenes (gato/vl/scenes.py) of a split's id range, rendered on
  demand: an endless, deterministic dataset;
- :class:`StoredPool`: (image, text) examples held in memory with their images still encoded
  (hub rows, a user's folder), decoded and fitted (gato/vl/images.py) when a row needs them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from gato.sequence import TokenSequence
from gato.serialize import tokenize_image_text_pairs
from gato.tokenizer import PATCH_SIZE
from gato.vl import scenes
from gato.vl.images import NATURAL_IMAGE_SIZE, fit_image

PAIRS_PER_ROW = 5
END_OF_TEXT_ID = 2  # SentencePiece's </s> in tokenizers/gato_sp32000.model
VL_FAMILY = "vl"
MEASURE_SCENES = 512  # scenes whose texts size a scene source's longest pair (layout check)


class EndOfText:
    """A text tokenizer whose encodings end with END_OF_TEXT_ID (picklable if the inner one is)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str) -> np.ndarray:
        return np.append(self.tokenizer.encode(text), np.int64(END_OF_TEXT_ID))


class ScenePool:
    """The generated scenes of one split (SPLIT_IDS), example i = scene id ids[i]."""

    image_size = scenes.IMAGE_SIZE

    def __init__(self, split: str) -> None:
        self.split = split
        self.ids = scenes.split_ids(split)

    def __len__(self) -> int:
        return len(self.ids)

    def text(self, i: int) -> str:
        return scenes.example_of(self.ids[i]).text

    def image(self, i: int) -> np.ndarray:
        return scenes.Scene.from_id(self.ids[i]).render()

    def measured(self) -> range:
        """The examples whose texts the layout check measures: a fixed sample of the split."""
        return range(min(len(self), MEASURE_SCENES))

    def state(self) -> dict:
        return {"kind": "scenes", "split": self.split, "ids": [self.ids.start, self.ids.stop]}


class StoredPool:
    """Examples in memory: (encoded image or path, text), images fitted to `image_size`."""

    def __init__(
        self, examples: Sequence[tuple[object, str]], image_size: int = NATURAL_IMAGE_SIZE
    ):
        if image_size % PATCH_SIZE:
            raise ValueError(f"image_size must be a multiple of {PATCH_SIZE}, got {image_size}")
        self.examples = list(examples)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.examples)

    def text(self, i: int) -> str:
        return self.examples[i][1]

    def image(self, i: int) -> np.ndarray:
        return fit_image(self.examples[i][0], self.image_size)

    def measured(self) -> range:
        return range(len(self))

    def state(self) -> dict:
        return {"kind": "stored", "examples": len(self), "image_size": self.image_size}


class PairSource:
    """Rows of five (image, text) pairs of one vision-language task and split."""

    def __init__(self, task: str, pool, text_tokenizer, pairs_per_row: int = PAIRS_PER_ROW):
        if pairs_per_row < 1:
            raise ValueError(f"pairs_per_row must be >= 1, got {pairs_per_row}")
        self.task, self.family = task, VL_FAMILY
        self.pool, self.text_tokenizer = pool, EndOfText(text_tokenizer)
        self.pairs_per_row = pairs_per_row
        self.patches_per_image = (pool.image_size // PATCH_SIZE) ** 2
        self._lengths: OrderedDict[int, int] = OrderedDict()  # text tokens, recently used

    def __len__(self) -> int:
        return len(self.pool)

    def examples(self, key: int) -> list[int]:
        """The examples of row `key`: `pairs_per_row` indices, uniform with replacement."""
        rng = np.random.default_rng(np.random.SeedSequence([0x7A125, int(key)]))
        return [int(i) for i in rng.integers(len(self.pool), size=self.pairs_per_row)]

    def text_tokens(self, i: int) -> int:
        n = self._lengths.get(i)
        if n is None:
            n = len(self.text_tokenizer.encode(self.pool.text(i)))
            self._lengths[i] = n
            if len(self._lengths) > 100_000:
                self._lengths.popitem(last=False)
        return n

    def pair_tokens(self, i: int) -> int:
        return self.patches_per_image + self.text_tokens(i)

    def num_tokens(self, key: int) -> int:
        """Tokens of the whole row (before the sampler crops it to L)."""
        return sum(self.pair_tokens(i) for i in self.examples(key))

    def longest_pair(self) -> int:
        """Tokens of the longest pair: exact for stored examples, measured on a fixed sample of
        MEASURE_SCENES scenes for generated ones (a longer one later still cannot pass
        silently: the model raises on a local position beyond its table)."""
        return max((self.pair_tokens(i) for i in self.pool.measured()), default=0)

    def pairs(self, key: int) -> TokenSequence:
        """The whole row, uncropped."""
        chosen = self.examples(key)
        pairs = [(self.pool.image(i), self.pool.text(i)) for i in chosen]
        return tokenize_image_text_pairs(pairs, self.text_tokenizer)

    def tokens(self, key: int, start: int, stop: int) -> TokenSequence:
        """Tokens [start, stop) of row `key`."""
        seq = self.pairs(key)
        if not 0 <= start <= stop <= len(seq):
            raise ValueError(f"window [{start}, {stop}) outside a row of {len(seq)} tokens")
        return seq.window(start, stop)

    def state(self) -> dict:
        return {"pairs_per_row": self.pairs_per_row, **self.pool.state()}
