"""Observations, actions, episodes, documents and (image, text) pairs -> TokenSequence.

One agent timestep (spec section 3) is laid out as

    [text y_1:k, image patches x_1:m, tensors z_1:n, '|', action a_1:A]

with each group in lexicographic order of its key path. Local positions count from 0 at the first
token of every timestep through the separator and the action tokens. Only action tokens (and the
text of documents and captions) are loss targets; observations, including observation text, the
separator and padding are not (spec section 4). Episodes are tokenized for all timesteps at once,
with numpy, from leaves stacked over time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gato.sequence import Kind, TokenSequence, concatenate
from gato.specs import (
    ActionSpec,
    ContinuousSpec,
    DiscreteSpec,
    ImageSpec,
    ObservationSpec,
    TextSpec,
    ordered_leaves,
)
from gato.tokenizer import (
    SEPARATOR,
    detokenize_continuous,
    image_to_patches,
    patch_intervals,
    tokenize_continuous,
    tokenize_discrete,
)


def _text_tokenizer(text_tokenizer):
    if text_tokenizer is not None:
        return text_tokenizer
    from gato.text import get_text_tokenizer

    return get_text_tokenizer()


def _check_keys(obs, spec: Mapping, prefix: str = "") -> None:
    if not isinstance(obs, Mapping):
        raise ValueError(
            f"observation{' ' + prefix if prefix else ''} must be a mapping, "
            f"got {type(obs).__name__}"
        )
    missing = sorted(set(spec) - set(obs))
    extra = sorted(set(obs) - set(spec))
    if missing or extra:
        raise ValueError(
            f"observation{' under ' + prefix if prefix else ''} does not match its spec: "
            f"missing {missing}, unexpected {extra}"
        )
    for key, sub in spec.items():
        if isinstance(sub, Mapping):
            _check_keys(obs[key], sub, f"{prefix}/{key}" if prefix else key)


def _leaf(obs, path: tuple[str, ...]):
    for key in path:
        obs = obs[key]
    return obs


def _expect_shape(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")


def tokenize_actions(actions, spec: ActionSpec, num_steps: int) -> np.ndarray:
    """Actions stacked over time (T, *spec.shape) -> tokens (T, A).

    Continuous actions are rescaled from [low, high] to [-1, 1] and binned without companding
    (values beyond the bounds saturate); discrete actions must be integers in [0, n).
    """
    arr = np.asarray(actions)
    _expect_shape("action", arr, (num_steps, *spec.shape))
    if isinstance(spec, DiscreteSpec):
        return tokenize_discrete(arr, "action", spec.n).reshape(num_steps, spec.size)
    if isinstance(spec, ContinuousSpec):
        low, high = np.asarray(spec.low, np.float64), np.asarray(spec.high, np.float64)
        if not (low == -1.0).all() or not (high == 1.0).all():
            arr = (arr - low) / (high - low) * 2.0 - 1.0
        return tokenize_continuous(arr, mu_law=False, name="action").reshape(num_steps, spec.size)
    raise ValueError(f"not an action spec: {spec!r}")


def decode_action(tokens, spec: ActionSpec) -> np.ndarray:
    """Action tokens -> an action of `spec.shape`: float32 within bounds, or int64 in [0, n)."""
    tokens = np.asarray(tokens).reshape(-1)
    if tokens.shape[0] != spec.size:
        raise ValueError(f"expected {spec.size} action tokens, got {tokens.shape[0]}")
    if isinstance(spec, DiscreteSpec):
        return tokenize_discrete(tokens, "action token", spec.n).reshape(spec.shape)
    values = detokenize_continuous(tokens, mu_law=False)
    low, high = np.asarray(spec.low, np.float64), np.asarray(spec.high, np.float64)
    if not (low == -1.0).all() or not (high == 1.0).all():
        values = (values + 1.0) / 2.0 * (high - low) + low
    return values.astype(np.float32).reshape(spec.shape)


def tokenize_episode(
    observations: Mapping,
    actions,
    obs_spec: ObservationSpec,
    action_spec: ActionSpec | None,
    text_tokenizer=None,
    first_timestep: int = 0,
) -> TokenSequence:
    """An episode whose observation leaves are stacked over time -> one TokenSequence.

    `observations` has the nesting of `obs_spec`; each leaf holds T steps: arrays of shape
    (T, *shape) (images (T, H, W, C) uint8) and, for text, a sequence of T strings. `actions` is
    (T, *action_spec.shape), or None for observations only (each still ends with '|').
    """
    _check_keys(observations, obs_spec)
    leaves = ordered_leaves(obs_spec)
    num_steps = _num_steps(observations, leaves, actions)

    texts: list[list[np.ndarray]] = []  # per text leaf, per step
    tok_blocks, kind_blocks, patch_blocks, rows, cols = [], [], [], [], []
    for path, leaf in leaves:
        name = "/".join(path)
        value = _leaf(observations, path)
        if isinstance(leaf, TextSpec):
            texts.append(_encode_texts(name, value, num_steps, text_tokenizer))
            continue
        arr = np.asarray(value)
        if isinstance(leaf, ImageSpec):
            _expect_shape(name, arr, (num_steps, *leaf.shape))
            patches = image_to_patches(arr)  # (T, P, 16, 16, C)
            r, c = patch_intervals(leaf.height, leaf.width)
            patch_blocks.append(patches)
            rows.append(r)
            cols.append(c)
            tok_blocks.append(np.zeros((num_steps, leaf.num_patches), np.int64))
            kind_blocks.append(np.full(leaf.num_patches, Kind.IMAGE, np.uint8))
        elif isinstance(leaf, DiscreteSpec):
            _expect_shape(name, arr, (num_steps, *leaf.shape))
            tok_blocks.append(tokenize_discrete(arr, name, leaf.n).reshape(num_steps, leaf.size))
            kind_blocks.append(np.full(leaf.size, Kind.DISCRETE, np.uint8))
        else:
            _expect_shape(name, arr, (num_steps, *leaf.shape))
            tokens = tokenize_continuous(arr, mu_law=True, name=name)
            tok_blocks.append(tokens.reshape(num_steps, leaf.size))
            kind_blocks.append(np.full(leaf.size, Kind.CONTINUOUS, np.uint8))

    tok_blocks.append(np.full((num_steps, 1), SEPARATOR, np.int64))
    kind_blocks.append(np.array([Kind.SEPARATOR], np.uint8))
    if actions is not None:
        if action_spec is None:
            raise ValueError("actions were given without an action spec")
        tok_blocks.append(tokenize_actions(actions, action_spec, num_steps))
        kind_blocks.append(np.full(action_spec.size, Kind.ACTION, np.uint8))

    fixed_tokens = np.concatenate(tok_blocks, axis=1)  # (T, S)
    fixed_kinds = np.concatenate(kind_blocks)  # (S,)
    if patch_blocks:
        patches = np.concatenate(patch_blocks, axis=1)  # (T, P, 16, 16, C)
        patches = patches.reshape(-1, *patches.shape[2:])
        patch_rows = np.tile(np.concatenate(rows), (num_steps, 1))
        patch_cols = np.tile(np.concatenate(cols), (num_steps, 1))
    else:
        patches = np.zeros((0, 16, 16, 3), np.float32)
        patch_rows = patch_cols = np.zeros((0, 2), np.float32)

    if texts:
        step_text = [np.concatenate([t[i] for t in texts]) for i in range(num_steps)]
        lengths = np.array([len(t) for t in step_text], np.int64) + fixed_tokens.shape[1]
        tokens = np.concatenate(
            [x for i in range(num_steps) for x in (step_text[i], fixed_tokens[i])]
        )
        text_kind = np.uint8(Kind.TEXT)
        kinds = np.concatenate(
            [x for t in step_text for x in (np.full(len(t), text_kind), fixed_kinds)]
        )
    else:
        lengths = np.full(num_steps, fixed_tokens.shape[1], np.int64)
        tokens = fixed_tokens.reshape(-1)
        kinds = np.tile(fixed_kinds, num_steps)
    starts = np.cumsum(lengths) - lengths
    local = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)
    return TokenSequence(
        tokens=tokens,
        kinds=kinds,
        local_positions=local,
        loss_mask=kinds == Kind.ACTION,
        timesteps=np.repeat(np.arange(num_steps, dtype=np.int64) + first_timestep, lengths),
        patches=patches,
        patch_rows=patch_rows,
        patch_cols=patch_cols,
    )


def _num_steps(observations, leaves, actions) -> int:
    if not leaves:
        raise ValueError("the observation spec declares no observations")
    path, leaf = leaves[0]
    value = _leaf(observations, path)
    n = (
        len(value)
        if isinstance(leaf, TextSpec)
        else int(np.shape(value)[0])
        if np.ndim(value)
        else 0
    )
    if actions is not None and np.shape(actions)[:1] != (n,):
        raise ValueError(f"{n} observation steps but actions of shape {np.shape(actions)}")
    return n


def _encode_texts(name, value, num_steps, text_tokenizer) -> list[np.ndarray]:
    if isinstance(value, str) or len(value) != num_steps:
        raise ValueError(f"{name}: expected {num_steps} strings, one per step")
    cache: dict[str, np.ndarray] = {}  # missions repeat over an episode: encode each once
    out = []
    for s in value:
        if not isinstance(s, str):
            raise ValueError(f"{name}: text observations must be str, got {type(s).__name__}")
        if s not in cache:
            cache[s] = _text_tokenizer(text_tokenizer).encode(s)
        out.append(cache[s])
    return out


def _add_time_axis(observation, spec: Mapping):
    return {
        key: _add_time_axis(observation[key], sub)
        if isinstance(sub, Mapping)
        else [observation[key]]
        if isinstance(sub, TextSpec)
        else np.asarray(observation[key])[None]
        for key, sub in spec.items()
    }


def tokenize_timestep(
    observation: Mapping,
    action,
    obs_spec: ObservationSpec,
    action_spec: ActionSpec | None,
    timestep: int = 0,
    text_tokenizer=None,
) -> TokenSequence:
    """One timestep [obs..., '|', action...]; `action=None` gives the observation and '|' only,
    which is what a policy feeds before sampling the action."""
    _check_keys(observation, obs_spec)
    stacked = _add_time_axis(observation, obs_spec)
    actions = None if action is None else np.asarray(action)[None]
    return tokenize_episode(stacked, actions, obs_spec, action_spec, text_tokenizer, timestep)


def action_sequence(action_tokens, timestep: int, first_local_position: int) -> TokenSequence:
    """Action tokens that follow an observation (as fed back one at a time by a policy)."""
    tokens = np.asarray(action_tokens, np.int64).reshape(-1)
    n = tokens.shape[0]
    return TokenSequence(
        tokens=tokens,
        kinds=np.full(n, Kind.ACTION, np.uint8),
        local_positions=np.arange(first_local_position, first_local_position + n, dtype=np.int64),
        loss_mask=np.ones(n, bool),
        timesteps=np.full(n, timestep, np.int64),
        patches=np.zeros((0, 16, 16, 3), np.float32),
        patch_rows=np.zeros((0, 2), np.float32),
        patch_cols=np.zeros((0, 2), np.float32),
    )


def tokenize_document(text: str, text_tokenizer=None) -> TokenSequence:
    """A text document: every token is a target; no timestep structure (local position 0)."""
    if not isinstance(text, str):
        raise ValueError(f"a document must be a str, got {type(text).__name__}")
    return document_sequence(_text_tokenizer(text_tokenizer).encode(text))


def document_sequence(ids) -> TokenSequence:
    """Text token ids laid out as (part of) a document: all targets, local position 0."""
    tokens = np.asarray(ids, np.int64)
    n = tokens.shape[0]
    return TokenSequence(
        tokens=tokens,
        kinds=np.full(n, Kind.TEXT, np.uint8),
        local_positions=np.zeros(n, np.int64),
        loss_mask=np.ones(n, bool),
        timesteps=np.zeros(n, np.int64),
        patches=np.zeros((0, 16, 16, 3), np.float32),
        patch_rows=np.zeros((0, 2), np.float32),
        patch_cols=np.zeros((0, 2), np.float32),
    )


def tokenize_image_text_pairs(
    pairs: Sequence[tuple[np.ndarray, str]], text_tokenizer=None
) -> TokenSequence:
    """(image, caption) pairs, each laid out as [patches..., caption...] with no separator;
    captions are targets. Gato concatenates five pairs per sequence; the caller chooses."""
    seqs = []
    for i, (image, caption) in enumerate(pairs):
        image = np.asarray(image)
        if image.ndim != 3:
            raise ValueError(f"pair {i}: expected an (H, W, C) image, got shape {image.shape}")
        if not isinstance(caption, str):
            raise ValueError(f"pair {i}: the caption must be a str, got {type(caption).__name__}")
        patches = image_to_patches(image)
        rows, cols = patch_intervals(image.shape[0], image.shape[1])
        text = _text_tokenizer(text_tokenizer).encode(caption)
        kinds = np.concatenate(
            [np.full(len(patches), Kind.IMAGE, np.uint8), np.full(len(text), Kind.TEXT, np.uint8)]
        )
        seqs.append(
            TokenSequence(
                tokens=np.concatenate([np.zeros(len(patches), np.int64), text]),
                kinds=kinds,
                local_positions=np.arange(len(kinds), dtype=np.int64),
                loss_mask=kinds == Kind.TEXT,
                timesteps=np.full(len(kinds), i, np.int64),
                patches=patches,
                patch_rows=rows,
                patch_cols=cols,
            )
        )
    return concatenate(seqs)
