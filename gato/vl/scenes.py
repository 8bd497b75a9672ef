"""Generated scenes: an offline captioning and visual question answering dataset.

A scene is 1 to 4 objects on a dark background, each with a colour (6), a shape (circle, square,
triangle), a size (small, large) and a position (one cell of a 3x3 grid: "top left", "top",
"top right", "left", "centre", ..., "bottom right"), rendered with numpy as a 64x64 RGB image.
Captions and question/answer pairs are generated from the scene's description, so every answer is
right by construction (and tests check it against the rendered pixels):

    >>> ex = scene_examples("test", count=1)[0]
    >>> ex.text          # e.g. 'Q: how many red objects? A: two' or 'two objects: a large ...'
    >>> ex.image.shape   # (64, 64, 3) uint8

Every scene is a pure function of its integer id (``Scene.from_id``); ids are split into fixed,
disjoint ranges (``SPLIT_IDS``): **test = [0, 100000)**, never used for training or validation;
val = [100000, 200000); train = [1000000, 2**31). Question types: ``count``, ``colour``,
``shape``, ``position``, ``size``; the text of a question reads ``"Q: <question> A: <answer>"``,
as JAT's ``ok-vqa`` rows do.

[decision] 64x64 pixels (a multiple of 16, GATO_SPEC.md section 12): 16 patches per image, so a
sequence of five (image, text) pairs is about 5 x (16 + 18) = 170 tokens (234 the longest of
300 rows measured) and fits even the ``debug`` size's 512-token context uncropped; one grid
cell is 21 px, which holds a large object (18 px across) and keeps a small one (10 px) big
enough that its shape is plain at 16x16 patch resolution. Objects of a scene occupy distinct
cells, so positions are unambiguous and objects never overlap.

``python -m gato.vl.scenes --out DIR --count N --split test`` writes N examples as parquet in the
hub's schema (``{"images": Image, "text": str}``, see gato/vl/hub.py).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 64
GRID = 3
CELL = IMAGE_SIZE / GRID
BACKGROUND = (24, 24, 24)
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 5.0, "large": 9.0}  # half the object's extent, in pixels
POSITIONS = (
    ("top left", "top", "top right"),
    ("left", "centre", "right"),
    ("bottom left", "bottom", "bottom right"),
)
MAX_OBJECTS = 4
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
QUESTION_TYPES = ("count", "colour", "shape", "position", "size")
CAPTION_PROB = 0.5  # the share of examples that are captions (the rest are questions)
SPLIT_IDS = {
    "test": (0, 100_000),
    "val": (100_000, 200_000),
    "train": (1_000_000, 2**31),
}
_NAMESPACE = 0x5CE7E5  # separates scene generators from every other seed of the project


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    size: str
    row: int  # grid cell, 0 = top
    col: int  # grid cell, 0 = left
    cx: float  # centre, pixels
    cy: float

    @property
    def position(self) -> str:
        return POSITIONS[self.row][self.col]

    def phrase(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"

    def mask(self, height: int = IMAGE_SIZE, width: int = IMAGE_SIZE) -> np.ndarray:
        """(H, W) bool: the pixels whose centres lie inside the object."""
        y, x = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
        r = SIZES[self.size]
        dx, dy = x - self.cx, y - self.cy
        if self.shape == "circle":
            return dx * dx + dy * dy <= r * r
        if self.shape == "square":
            h = r * 0.9  # about a circle's area
            return (np.abs(dx) <= h) & (np.abs(dy) <= h)
        if self.shape == "triangle":  # apex up, base at the bottom
            t = (dy + r) / (2 * r)  # 0 at the apex, 1 at the base
            return (t >= 0) & (t <= 1) & (np.abs(dx) <= t * r)
        raise ValueError(f"unknown shape {self.shape!r}")


@dataclass(frozen=True)
class QA:
    qtype: str
    question: str
    answer: str

    @property
    def prompt(self) -> str:
        """What a model is given: the text up to and including 'A:'."""
        return f"Q: {self.question} A:"

    @property
    def text(self) -> str:
        return f"{self.prompt} {self.answer}"


@dataclass(frozen=True)
class Scene:
    scene_id: int
    objects: tuple[SceneObject, ...]

    @classmethod
    def from_id(cls, scene_id: int) -> Scene:
        """The scene of an id: 1-4 objects in distinct cells, each (colour, shape) once."""
        rng = _rng(scene_id, 0)
        n = int(rng.integers(1, MAX_OBJECTS + 1))
        cells = rng.choice(GRID * GRID, size=n, replace=False)
        kinds = rng.choice(len(COLOURS) * len(SHAPES), size=n, replace=False)
        colours, sizes = list(COLOURS), list(SIZES)
        objects = []
        for cell, kind in sorted(zip(cells.tolist(), kinds.tolist(), strict=True)):
            row, col = divmod(cell, GRID)
            jitter = rng.uniform(-1.0, 1.0, size=2)  # objects stay inside their cells
            objects.append(
                SceneObject(
                    colour=colours[kind // len(SHAPES)],
                    shape=SHAPES[kind % len(SHAPES)],
                    size=sizes[int(rng.integers(len(sizes)))],
                    row=row,
                    col=col,
                    cx=float((col + 0.5) * CELL + jitter[0]),
                    cy=float((row + 0.5) * CELL + jitter[1]),
                )
            )
        return cls(int(scene_id), tuple(objects))  # raster order of their cells

    def render(self) -> np.ndarray:
        """(64, 64, 3) uint8 RGB."""
        image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        image[:] = BACKGROUND
        for obj in self.objects:
            image[obj.mask()] = COLOURS[obj.colour]
        return image

    def caption(self) -> str:
        """E.g. 'two objects: a large red circle at the top left and a small blue square at the
        centre.'"""
        parts = [f"{o.phrase()} {_at(o.position)}" for o in self.objects]
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        noun = "object" if len(parts) == 1 else "objects"
        return f"{NUMBERS[len(parts)]} {noun}: {listed}."

    def questions(self, qtype: str, rng: np.random.Generator) -> QA:
        """One question of type `qtype` about this scene, with its answer."""
        objs = self.objects
        if qtype == "count":
            what = int(rng.integers(3))
            if what == 0:
                return QA(qtype, "how many objects are there?", NUMBERS[len(objs)])
            if what == 1:
                colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
                n = sum(o.colour == colour for o in objs)
                return QA(qtype, f"how many {colour} objects are there?", NUMBERS[n])
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            n = sum(o.shape == shape for o in objs)
            return QA(qtype, f"how many {shape}s are there?", NUMBERS[n])
        obj = objs[int(rng.integers(len(objs)))]
        if qtype == "colour":
            return QA(qtype, f"what colour is the {self._name(obj, 'colour', rng)}?", obj.colour)
        if qtype == "shape":
            return QA(qtype, f"what shape is the {self._name(obj, 'shape', rng)}?", obj.shape)
        if qtype == "size":
            return QA(qtype, f"what size is the {self._name(obj, 'size', rng)}?", obj.size)
        if qtype == "position":
            return QA(qtype, f"where is the {obj.colour} {obj.shape}?", obj.position)
        raise ValueError(f"unknown question type {qtype!r}; choose from {QUESTION_TYPES}")

    def _name(self, obj: SceneObject, asked: str, rng) -> str:
        """A phrase that names `obj` alone without giving away `asked`: by a unique attribute
        when one exists (and a coin says so), else by its position (always unique)."""
        for attr in ("shape", "colour") if rng.random() < 0.5 else ("colour", "shape"):
            if (
                attr != asked
                and sum(getattr(o, attr) == getattr(obj, attr) for o in self.objects) == 1
            ):
                return getattr(obj, attr) if attr == "shape" else f"{obj.colour} object"
        return f"object {_at(obj.position)}"


def _at(position: str) -> str:
    return "in the centre" if position == "centre" else f"at the {position}"


def _rng(scene_id: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([_NAMESPACE, int(scene_id), stream]))


@dataclass(frozen=True)
class SceneExample:
    """One (image, text) example of a scene: a caption, or a question with its answer."""

    scene_id: int
    text: str  # the whole text, what a training row holds
    prompt: str  # the part a model is given ('' for captions; 'Q: ... A:' for questions)
    answer: str  # the part it should produce (the caption, or the answer)
    qtype: str  # 'caption' or one of QUESTION_TYPES

    @property
    def scene(self) -> Scene:
        return Scene.from_id(self.scene_id)

    @property
    def image(self) -> np.ndarray:
        return self.scene.render()


def example_of(scene_id: int, kind: str | None = None) -> SceneExample:
    """The example of a scene id: its kind (caption or question type) drawn from the id unless
    given, so that a training stream mixes captions and every question type."""
    scene = Scene.from_id(scene_id)
    rng = _rng(scene_id, 1)
    if kind is None:
        kind = (
            "caption"
            if rng.random() < CAPTION_PROB
            else QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))]
        )
    if kind == "caption":
        caption = scene.caption()
        return SceneExample(scene.scene_id, caption, "", caption, "caption")
    qa = scene.questions(kind, rng)
    return SceneExample(scene.scene_id, qa.text, qa.prompt, qa.answer, qa.qtype)


def split_ids(split: str) -> range:
    """The scene ids of a split (SPLIT_IDS)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    return range(*SPLIT_IDS[split])


def scene_examples(
    split: str = "test", count: int = 100, seed: int | None = None, kind: str | None = None
) -> list[SceneExample]:
    """`count` examples of a split: the first `count` ids (seed None, a fixed benchmark) or
    `count` distinct ids drawn with `seed`. `kind`: 'caption' or a question type for examples of
    one kind only (default: each id's own kind)."""
    ids = split_ids(split)
    if not 0 < count <= len(ids):
        raise ValueError(f"count must be in [1, {len(ids)}] for split {split!r}, got {count}")
    if seed is None:
        chosen = list(ids[:count])
    else:
        picks = np.random.default_rng(seed).choice(len(ids), size=count, replace=False)
        chosen = [ids[int(i)] for i in picks]
    return [example_of(i, kind) for i in chosen]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gato.vl.scenes",
        description="Write generated scene examples as parquet in the hub's schema "
        '({"images": Image, "text": str}), readable by gato.vl.hub and datasets.',
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--count", type=int, default=1000, help="examples to write")
    parser.add_argument("--split", default="train", choices=sorted(SPLIT_IDS))
    parser.add_argument("--seed", type=int, default=None, help="draw ids (default: the first)")
    parser.add_argument("--kind", default=None, help="caption or a question type (default: mix)")
    args = parser.parse_args(argv)
    from gato.vl.hub import write_pairs_parquet

    examples = scene_examples(args.split, args.count, args.seed, args.kind)
    path = write_pairs_parquet(
        args.out, ((e.image, e.text) for e in examples), split=args.split, rows=len(examples)
    )
    print(f"wrote {len(examples)} examples to {path}")


if __name__ == "__main__":
    main()
