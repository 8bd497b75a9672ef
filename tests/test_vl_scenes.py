"""Generated scenes (gato/vl/scenes.py): determinism, fixed disjoint splits, rendering, and
answers checked against what an independent reading of the rendered pixels sees."""

from __future__ import annotations

import re

import numpy as np
import pytest

from gato.tokenizer import PATCH_SIZE
from gato.vl import scenes
from gato.vl.images import fit_image
from gato.vl.scenes import (
    BACKGROUND,
    COLOURS,
    GRID,
    IMAGE_SIZE,
    NUMBERS,
    POSITIONS,
    QUESTION_TYPES,
    SIZES,
    SPLIT_IDS,
    Scene,
    example_of,
    scene_examples,
    split_ids,
)


def test_a_scene_is_a_function_of_its_id():
    for i in (0, 7, 1_000_003):
        a, b = Scene.from_id(i), Scene.from_id(i)
        assert a == b
        assert np.array_equal(a.render(), b.render())
        assert example_of(i) == example_of(i)
    assert Scene.from_id(1) != Scene.from_id(2)
    assert [e.text for e in scene_examples("test", 20, seed=3)] == [
        e.text for e in scene_examples("test", 20, seed=3)
    ]
    assert [e.scene_id for e in scene_examples("test", 20, seed=3)] != [
        e.scene_id for e in scene_examples("test", 20, seed=4)
    ]


def test_splits_are_fixed_and_disjoint():
    assert SPLIT_IDS["test"] == (0, 100_000)  # documented: never used for training
    ranges = [split_ids(s) for s in ("test", "val", "train")]
    for a in range(3):
        for b in range(a + 1, 3):
            x, y = ranges[a], ranges[b]
            assert x.stop <= y.start or y.stop <= x.start
    test = scene_examples("test", 50)
    assert [e.scene_id for e in test] == list(range(50))  # the first ids: a fixed benchmark
    drawn = scene_examples("train", 50, seed=0)
    assert all(split_ids("train").start <= e.scene_id < 2**31 for e in drawn)
    with pytest.raises(ValueError, match="split"):
        split_ids("dev")


def test_images_are_rgb_multiples_of_16_and_mixed_kinds():
    image = Scene.from_id(3).render()
    assert image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and image.dtype == np.uint8
    assert IMAGE_SIZE % PATCH_SIZE == 0
    kinds = {example_of(i).qtype for i in range(400)}
    assert kinds == {"caption", *QUESTION_TYPES}
    assert all(
        e.text == (f"{e.prompt} {e.answer}" if e.prompt else e.answer)
        for e in scene_examples("test", 100)
    )
    assert all(
        re.fullmatch(r"Q: .+\? A: .+", e.text) for e in scene_examples("test", 30, kind="count")
    )


def test_rendering_puts_each_object_where_the_scene_says():
    for i in range(200):
        scene = Scene.from_id(i)
        image = scene.render()
        covered = np.zeros(image.shape[:2], bool)
        for obj in scene.objects:
            r = SIZES[obj.size]
            cy, cx = int(obj.cy), int(obj.cx)
            # The pixel a third of the way down from the centre is inside every shape.
            assert tuple(image[int(obj.cy + r / 3), cx]) == COLOURS[obj.colour]
            mine = (image == COLOURS[obj.colour]).all(axis=2) & obj.mask()
            ys, xs = np.nonzero(mine)
            h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
            assert abs(xs.mean() + 0.5 - obj.cx) < 1.0
            assert abs(h - 2 * r * (0.9 if obj.shape == "square" else 1)) <= 2, (i, obj, h)
            fill = mine.sum() / (h * w)
            expected = {"square": fill == 1.0, "circle": 0.7 < fill < 0.9, "triangle": fill < 0.65}
            assert expected[obj.shape], (i, obj, fill)
            top, bottom = mine[ys.min() + h // 4].sum(), mine[ys.max() - h // 4].sum()
            if obj.shape == "triangle":  # apex up
                assert top < 0.6 * bottom, (i, obj, top, bottom)
            else:
                assert abs(int(top) - int(bottom)) <= 2, (i, obj, top, bottom)
            assert (
                obj.position
                == POSITIONS[int(cy // (IMAGE_SIZE / GRID))][int(cx // (IMAGE_SIZE / GRID))]
            )
            covered |= obj.mask()
        assert (image[~covered] == BACKGROUND).all()


def _perceive(image: np.ndarray) -> list[dict]:
    """Objects read back from the pixels alone: per grid cell, the colour of its object and
    the shape and size from the filled share and extent of its bounding box."""
    names = {rgb: name for name, rgb in COLOURS.items()}
    cell = IMAGE_SIZE / GRID
    found = []
    for row in range(GRID):
        for col in range(GRID):
            y0, y1 = int(row * cell), int((row + 1) * cell)
            x0, x1 = int(col * cell), int((col + 1) * cell)
            patch = image[y0:y1, x0:x1]
            fg = (patch != BACKGROUND).any(axis=2)
            if not fg.any():
                continue
            colours = {tuple(p) for p in patch[fg]}
            assert len(colours) == 1, colours  # one flat-coloured object per cell
            ys, xs = np.nonzero(fg)
            h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
            fill = fg.sum() / (h * w)
            shape = "square" if fill > 0.95 else "circle" if fill > 0.7 else "triangle"
            found.append(
                dict(
                    colour=names[colours.pop()],
                    shape=shape,
                    size="large" if max(h, w) > 14 else "small",
                    position=POSITIONS[row][col],
                )
            )
    return found


def _answer(objects: list[dict], question: str) -> str:
    """Answer a scene question from the perceived objects (the reference for the generator)."""
    if question == "how many objects are there?":
        return NUMBERS[len(objects)]
    m = re.fullmatch(r"how many (\w+) objects are there\?", question)
    if m:
        return NUMBERS[sum(o["colour"] == m[1] for o in objects)]
    m = re.fullmatch(r"how many (\w+)s are there\?", question)
    if m:
        return NUMBERS[sum(o["shape"] == m[1] for o in objects)]
    m = re.fullmatch(r"where is the (\w+) (\w+)\?", question)
    if m:
        (hit,) = [o for o in objects if o["colour"] == m[1] and o["shape"] == m[2]]
        return hit["position"]
    m = re.fullmatch(r"what (colour|shape|size) is the (.+)\?", question)
    assert m, question
    asked, name = m[1], m[2]
    if name.startswith("object "):
        where = re.fullmatch(r"object (?:at the (.+)|in the (centre))", name)
        matches = [o for o in objects if o["position"] == (where[1] or where[2])]
    elif name.endswith(" object"):
        matches = [o for o in objects if o["colour"] == name.split()[0]]
    else:
        matches = [o for o in objects if o["shape"] == name]
    assert len(matches) == 1, (question, objects)  # the question names one object
    return matches[0][asked]


def test_answers_and_captions_match_the_rendered_pixels():
    for i in range(300):
        scene = Scene.from_id(i)
        seen = _perceive(scene.render())
        assert len(seen) == len(scene.objects)
        rng = np.random.default_rng(i)
        for qtype in QUESTION_TYPES:
            for _ in range(3):
                qa = scene.questions(qtype, rng)
                assert qa.answer == _answer(seen, qa.question), (i, qa, seen)
        caption = scene.caption()
        assert caption.startswith(f"{NUMBERS[len(seen)]} object")
        for o in seen:
            where = "in the centre" if o["position"] == "centre" else f"at the {o['position']}"
            assert f"a {o['size']} {o['colour']} {o['shape']} {where}" in caption


def test_fit_image_keeps_the_aspect_and_pads():
    wide = np.zeros((30, 60, 3), np.uint8)
    wide[:, :, 0] = 200
    out = fit_image(wide, 64)
    assert out.shape == (64, 64, 3)
    assert (out[20:44, :, 0] == 200).all()  # 32 rows of image, centred
    assert (out[:15, :, :] == 0).all() and (out[49:, :, :] == 0).all()
    gray = np.full((64, 64), 7, np.uint8)
    assert np.array_equal(fit_image(gray, 64), np.full((64, 64, 3), 7, np.uint8))
    with pytest.raises(ValueError, match="multiples of 16"):
        fit_image(wide, 50)


def test_command_writes_hub_parquet(tmp_path):
    from gato.vl.hub import load_hub_pairs

    scenes.main(["--out", str(tmp_path), "--count", "6", "--split", "test"])
    rows = list(load_hub_pairs("scenes", "test", local_path=tmp_path))
    assert [t for _, t in rows] == [e.text for e in scene_examples("test", 6)]
    assert np.array_equal(fit_image(rows[2][0], 64), Scene.from_id(2).render())
