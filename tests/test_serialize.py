"""Timesteps, episodes, documents and image-text pairs in Gato's token layout."""

import json

import numpy as np
import pytest
from conftest import CharTokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

from gato.sequence import Kind, collate, concatenate
from gato.serialize import (
    decode_action,
    tokenize_actions,
    tokenize_document,
    tokenize_episode,
    tokenize_image_text_pairs,
    tokenize_timestep,
)
from gato.specs import (
    ContinuousSpec,
    DiscreteSpec,
    ImageSpec,
    TextSpec,
    action_token_bounds,
    ordered_leaves,
    spec_from_dict,
    spec_to_dict,
)
from gato.tokenizer import SEPARATOR, image_to_patches, tokenize_continuous

OBS_SPEC = {
    "vec": ContinuousSpec((3,)),
    "mission": TextSpec(),
    "camera": ImageSpec(32, 16, 3),
    "state": {"grid": DiscreteSpec((2, 2), n=11), "angle": ContinuousSpec((1,))},
}
ACTION_SPEC = ContinuousSpec((2,), low=-2.0, high=2.0)


def make_episode(steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs = {
        "vec": rng.normal(size=(steps, 3)).astype(np.float32),
        "mission": ["go"] * (steps - 1) + ["stop now"],
        "camera": rng.integers(0, 256, (steps, 32, 16, 3), dtype=np.uint8),
        "state": {
            "grid": rng.integers(0, 11, (steps, 2, 2)),
            "angle": rng.normal(size=(steps, 1)),
        },
    }
    return obs, rng.uniform(-2, 2, (steps, 2)).astype(np.float32)


def step_of(obs, t):
    return {k: step_of(v, t) if isinstance(v, dict) else v[t] for k, v in obs.items()}


def test_timestep_layout(chars):
    obs, actions = make_episode(2)  # step 0's mission is "go"
    seq = tokenize_timestep(
        step_of(obs, 0), actions[0], OBS_SPEC, ACTION_SPEC, text_tokenizer=chars
    )
    seq.validate()
    # text (2 chars), image (2 patches), tensors in key-path order: state/angle (1),
    # state/grid (4), vec (3); then '|' and the 2 action tokens.
    expected = [Kind.TEXT] * 2 + [Kind.IMAGE] * 2 + [Kind.CONTINUOUS] + [Kind.DISCRETE] * 4
    expected += [Kind.CONTINUOUS] * 3 + [Kind.SEPARATOR] + [Kind.ACTION] * 2
    assert seq.kinds.tolist() == expected
    assert seq.local_positions.tolist() == list(range(len(expected)))
    assert seq.loss_mask.tolist() == [k == Kind.ACTION for k in expected]
    assert seq.tokens[2:4].tolist() == [0, 0] and seq.tokens[-3] == SEPARATOR
    assert seq.tokens[:2].tolist() == chars.encode("go").tolist()
    assert seq.tokens[5:9].tolist() == obs["state"]["grid"][0].reshape(-1).tolist()
    np.testing.assert_array_equal(seq.tokens[9:12], tokenize_continuous(obs["vec"][0], True))
    np.testing.assert_array_equal(seq.patches, image_to_patches(obs["camera"][0]))
    np.testing.assert_allclose(seq.patch_rows, [[0, 0.5], [0.5, 1]])
    np.testing.assert_allclose(seq.patch_cols, [[0, 1], [0, 1]])


def test_episode_equals_its_timesteps_concatenated(chars):
    obs, actions = make_episode(5, seed=3)
    episode = tokenize_episode(obs, actions, OBS_SPEC, ACTION_SPEC, text_tokenizer=chars)
    steps = [
        tokenize_timestep(step_of(obs, t), actions[t], OBS_SPEC, ACTION_SPEC, t, chars)
        for t in range(5)
    ]
    joined = concatenate(steps)
    for name in ("tokens", "kinds", "local_positions", "loss_mask", "timesteps", "patches"):
        np.testing.assert_array_equal(getattr(episode, name), getattr(joined, name), name)
    assert episode.timestep_starts().tolist() == [0, 15, 30, 45, 60]
    assert episode.local_positions[-1] == 14 + len("stop now") - 2  # the last mission is longer


def test_observation_only_timestep_ends_with_separator(chars):
    obs, _ = make_episode(1)
    seq = tokenize_timestep(
        step_of(obs, 0), None, OBS_SPEC, ACTION_SPEC, timestep=7, text_tokenizer=chars
    )
    assert seq.tokens[-1] == SEPARATOR and not seq.loss_mask.any()
    assert (seq.timesteps == 7).all()


keys = st.text("abcxyz_", min_size=1, max_size=3)
leaf = st.sampled_from([ContinuousSpec((2,)), DiscreteSpec((1,), n=5), ImageSpec(16, 16, 1)])
nested_specs = st.recursive(
    leaf, lambda sub: st.dictionaries(keys, sub, min_size=1, max_size=3), max_leaves=8
).filter(lambda s: isinstance(s, dict))


def fill(spec, rng):
    if isinstance(spec, dict):
        return {k: fill(v, rng) for k, v in spec.items()}
    if isinstance(spec, ImageSpec):
        return rng.integers(0, 256, (1, *spec.shape), dtype=np.uint8)
    if isinstance(spec, DiscreteSpec):
        return rng.integers(0, spec.n, (1, *spec.shape))
    return rng.normal(size=(1, *spec.shape))


@settings(max_examples=60, deadline=None)
@given(nested_specs, st.integers(0, 2**16))
def test_nested_keys_are_ordered_by_path_within_each_group(spec, seed):
    rng = np.random.default_rng(seed)
    obs = fill(spec, rng)
    seq = tokenize_episode(obs, None, spec, None)
    leaves = ordered_leaves(spec)
    images = [p for p, s in leaves if isinstance(s, ImageSpec)]
    tensors = [p for p, s in leaves if not isinstance(s, ImageSpec)]
    assert [p for p, _ in leaves] == sorted(images) + sorted(tensors)
    # Rebuild the expected token stream leaf by leaf in that order.
    expected = []
    for path, s in leaves:
        value = obs
        for k in path:
            value = value[k]
        if isinstance(s, ImageSpec):
            expected += [0]
        elif isinstance(s, DiscreteSpec):
            expected += value.reshape(-1).tolist()
        else:
            expected += tokenize_continuous(value, True).tolist()
    assert seq.tokens.tolist() == expected + [SEPARATOR]


@given(st.integers(0, 2**16))
def test_actions_round_trip(seed):
    rng = np.random.default_rng(seed)
    cont = ContinuousSpec((3,), low=(-1.0, 0.0, -10.0), high=(1.0, 2.0, 10.0))
    a = rng.uniform(cont.low, cont.high, (4, 3))
    tokens = tokenize_actions(a, cont, 4)
    bin_width = (np.array(cont.high) - np.array(cont.low)) / 1024
    decoded = np.stack([decode_action(t, cont) for t in tokens])
    assert (np.abs(decoded - a) <= bin_width / 2 + 1e-5).all()
    disc = DiscreteSpec((), n=18)
    b = rng.integers(0, 18, (4,))
    assert [int(decode_action(t, disc)) for t in tokenize_actions(b, disc, 4)] == b.tolist()


def test_action_bounds_and_decode_errors():
    lo, hi = action_token_bounds(ContinuousSpec((2,)))
    assert lo.tolist() == [32000, 32000] and hi.tolist() == [33024, 33024]
    lo, hi = action_token_bounds(DiscreteSpec((), n=7))
    assert lo.tolist() == [0] and hi.tolist() == [7]
    with pytest.raises(ValueError, match="expected 2 action tokens"):
        decode_action([32000], ContinuousSpec((2,)))
    with pytest.raises(ValueError, match=r"outside \[0, 7\)"):
        decode_action([7], DiscreteSpec((), n=7))


def test_spec_mismatches_are_explained(chars):
    obs, actions = make_episode(2)
    step = step_of(obs, 0)
    cases = [
        ({k: v for k, v in step.items() if k != "vec"}, r"missing \['vec'\]"),
        ({**step, "extra": 1.0}, r"unexpected \['extra'\]"),
        ({**step, "vec": np.zeros(4)}, r"vec: expected shape \(1, 3\), got \(1, 4\)"),
        ({**step, "camera": np.zeros((32, 16, 3), np.float32)}, "uint8"),
        ({**step, "camera": np.zeros((16, 16, 3), np.uint8)}, r"camera: expected shape"),
        ({**step, "mission": 3}, "mission: text observations must be str"),
        (
            {**step, "state": {"grid": np.full((2, 2), 11), "angle": [0.0]}},
            r"state/grid: discrete value 11 is outside \[0, 11\)",
        ),
        ({**step, "vec": np.array([0.0, np.nan, 0.0])}, "vec: NaN"),
        ({**step, "state": 5}, "observation state must be a mapping"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            tokenize_timestep(bad, actions[0], OBS_SPEC, ACTION_SPEC, text_tokenizer=chars)
    with pytest.raises(ValueError, match=r"action: expected shape \(1, 2\)"):
        tokenize_timestep(step, np.zeros(3), OBS_SPEC, ACTION_SPEC, text_tokenizer=chars)


def test_document_and_pairs(chars):
    doc = tokenize_document("hello", text_tokenizer=chars)
    assert doc.loss_mask.all() and (doc.kinds == Kind.TEXT).all() and len(doc) == 5
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
    pairs = tokenize_image_text_pairs([(im, f"cap {i}") for i, im in enumerate(images)], chars)
    pairs.validate()
    assert len(pairs) == 5 * (4 + 5) and pairs.num_patches == 20
    first = pairs.window(0, 9)
    assert first.kinds.tolist() == [Kind.IMAGE] * 4 + [Kind.TEXT] * 5
    assert first.loss_mask.tolist() == [False] * 4 + [True] * 5
    assert first.local_positions.tolist() == list(range(9))
    assert pairs.timestep_starts().tolist() == [0, 9, 18, 27, 36]
    np.testing.assert_array_equal(pairs.patches[4:8], image_to_patches(images[1]))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200), st.integers(0, 2**16))
def test_windows_keep_their_own_patches(a, b, seed):
    obs, actions = make_episode(4, seed)
    seq = tokenize_episode(obs, actions, OBS_SPEC, ACTION_SPEC, text_tokenizer=CharTokenizer())
    start, stop = sorted((a % len(seq), b % (len(seq) + 1)))
    win = seq.window(start, stop).validate()
    image_positions = np.flatnonzero(seq.kinds == Kind.IMAGE)
    inside = np.flatnonzero((image_positions >= start) & (image_positions < stop))
    np.testing.assert_array_equal(win.patches, seq.patches[inside])
    batch = collate([seq, win], length=len(seq) + 3)
    assert batch.shape == (2, len(seq) + 3)
    rows = batch.patch_index[1][batch.patch_index[1] >= 0]
    np.testing.assert_array_equal(batch.patches[rows], seq.patches[inside])
    assert not batch.loss_mask[1, len(win) :].any() and (batch.kinds[1, len(win) :] == 0).all()


def test_collate_rejects_overlong_and_mixed_channels(chars):
    obs, actions = make_episode(2)
    seq = tokenize_episode(obs, actions, OBS_SPEC, ACTION_SPEC, text_tokenizer=chars)
    with pytest.raises(ValueError, match="does not fit"):
        collate([seq], length=10)
    gray = tokenize_episode(
        {"im": np.zeros((1, 16, 16, 1), np.uint8)}, None, {"im": ImageSpec(16, 16, 1)}, None
    )
    with pytest.raises(ValueError, match="channel"):
        collate([seq, gray])


def test_specs_round_trip_through_json():
    spec = {**OBS_SPEC, "action": ContinuousSpec((3,), (-1.0, 0.0, 2.0), (1.0, 1.0, 3.0))}
    data = json.loads(json.dumps(spec_to_dict(spec)))
    assert spec_from_dict(data) == spec
    with pytest.raises(ValueError, match="unknown spec type"):
        spec_from_dict({"type": "audio"})
    with pytest.raises(ValueError, match="multiple of 16"):
        ImageSpec(84, 84, 1)
