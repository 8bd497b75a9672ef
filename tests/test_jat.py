"""JAT-schema episode storage: shard round trips, atomic writes, the hub loader on local data."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from gato import jat
from gato.envs.task import TaskInfo
from gato.jat import (
    CONTINUOUS_ACT,
    CONTINUOUS_OBS,
    DISCRETE_ACT,
    DISCRETE_OBS,
    IMAGE_OBS,
    JAT_COLUMNS,
    TEXT_OBS,
    Episode,
)
from gato.sequence import Kind
from gato.specs import ContinuousSpec, DiscreteSpec, ImageSpec, TextSpec


class FakeTextTokenizer:
    def encode(self, text: str) -> np.ndarray:
        return np.array([ord(c) % 100 for c in text], np.int64)


ALL_MODALITIES = TaskInfo(
    name="fake.all",
    family="fake",
    jat_name=None,
    obs_spec={
        CONTINUOUS_OBS: ContinuousSpec((3,)),
        DISCRETE_OBS: DiscreteSpec((2,), 7),
        TEXT_OBS: TextSpec(),
        IMAGE_OBS: ImageSpec(16, 32, 3),
    },
    action_spec=DiscreteSpec((), 4),
    max_episode_steps=10,
)


def make_episode(t: int = 5, index: int = 0, continuous_actions: bool = False) -> Episode:
    rng = np.random.default_rng(index)
    obs = {
        CONTINUOUS_OBS: rng.normal(size=(t, 3)).astype(np.float32),
        DISCRETE_OBS: rng.integers(0, 7, size=(t, 2)),
        TEXT_OBS: [f"go to the red ball {i % 2}" for i in range(t)],
        IMAGE_OBS: rng.integers(0, 256, size=(t, 16, 32, 3), dtype=np.uint8),
    }
    actions = (
        rng.uniform(-1, 1, size=(t, 2)).astype(np.float32)
        if continuous_actions
        else rng.integers(0, 4, size=t)
    )
    return Episode(
        task="fake.all",
        observations=obs,
        actions=actions,
        rewards=rng.normal(size=t).astype(np.float32),
        seed=100 + index,
        episode_index=index,
        success=bool(index % 2),
    )


def assert_episodes_equal(a: Episode, b: Episode) -> None:
    assert (a.task, a.seed, a.episode_index, a.success) == (
        b.task,
        b.seed,
        b.episode_index,
        b.success,
    )
    assert sorted(a.observations) == sorted(b.observations)
    for k, v in a.observations.items():
        if k == TEXT_OBS:
            assert list(v) == list(b.observations[k])
        else:
            np.testing.assert_array_equal(np.asarray(v), b.observations[k])
            assert b.observations[k].dtype == np.asarray(v).dtype
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)


@pytest.mark.parametrize("continuous_actions", [False, True])
def test_shard_round_trip_all_columns(tmp_path, continuous_actions):
    eps = [make_episode(t=3 + i, index=i, continuous_actions=continuous_actions) for i in range(3)]
    path = jat.write_shard(tmp_path, eps)
    assert path.name == "episodes-000000-000002.parquet"
    assert jat.shard_paths(tmp_path) == [path]
    back = jat.read_shard(path)
    assert len(back) == 3
    for a, b in zip(eps, back, strict=True):
        assert_episodes_equal(a, b)
    act = CONTINUOUS_ACT if continuous_actions else DISCRETE_ACT
    names = pq.read_schema(path).names
    assert set(JAT_COLUMNS) - {CONTINUOUS_ACT, DISCRETE_ACT} | {act} <= set(names)
    assert jat.shard_episode_indices(path) == [0, 1, 2]


def test_shard_reads_through_hf_datasets(tmp_path):
    """The shard carries `datasets` features: the generic parquet loader reads JAT columns."""
    import datasets

    ep = make_episode(t=4)
    path = jat.write_shard(tmp_path / "shards", [ep])
    ds = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert isinstance(ds.features[IMAGE_OBS].feature, datasets.Image)
    back = Episode.from_row(ds[0])  # images come back as PIL images here
    assert_episodes_equal(ep, back)


def test_atomic_write_crash_leaves_no_loadable_shard(tmp_path):
    def crash():
        raise KeyboardInterrupt("simulated kill between write and rename")

    good = jat.write_shard(tmp_path, [make_episode(index=0)])
    with pytest.raises(KeyboardInterrupt):
        jat.write_shard(tmp_path, [make_episode(index=1)], _crash_before_rename=crash)
    temps = [p for p in tmp_path.iterdir() if p.name.startswith(jat.TMP_PREFIX)]
    assert len(temps) == 1
    assert jat.shard_paths(tmp_path) == [good]  # readers never see the temporary file
    assert [ep.episode_index for ep in jat.iter_episodes(tmp_path)] == [0]
    # A temp file cut short (killed while writing) is not even valid parquet.
    temps[0].write_bytes(temps[0].read_bytes()[:100])
    with pytest.raises(Exception):  # noqa: B017 (pyarrow's error type varies by version)
        pq.read_table(temps[0])
    assert jat.remove_temporary_files(tmp_path) == temps
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]


def test_episode_to_sequence_is_valid(tmp_path):
    ep = make_episode(t=4)
    seq = jat.episode_to_sequence(ep, ALL_MODALITIES, text_tokenizer=FakeTextTokenizer())
    seq.validate()
    assert int((seq.kinds == Kind.ACTION).sum()) == 4
    assert int((seq.kinds == Kind.SEPARATOR).sum()) == 4
    assert seq.num_patches == 4 * ALL_MODALITIES.obs_spec[IMAGE_OBS].num_patches
    assert int((seq.kinds == Kind.TEXT).sum()) == 4 * len("go to the red ball 0")
    assert np.array_equal(np.unique(seq.timesteps), np.arange(4))
    # After a round trip through a shard, the same tokens.
    back = jat.read_shard(jat.write_shard(tmp_path, [ep]))[0]
    seq2 = jat.episode_to_sequence(back, ALL_MODALITIES, text_tokenizer=FakeTextTokenizer())
    np.testing.assert_array_equal(seq.tokens, seq2.tokens)
    np.testing.assert_array_equal(seq.patches, seq2.patches)


def test_episode_to_sequence_default_tokenizer():
    jat.episode_to_sequence(make_episode(t=2), ALL_MODALITIES).validate()


# ------------------------------------------------------------------------- the hub loader

ATARI = TaskInfo(
    name="atari.fake",
    family="atari",
    jat_name="atari-fake",
    obs_spec={IMAGE_OBS: ImageSpec(80, 80, 3)},
    action_spec=DiscreteSpec((), 6),
    max_episode_steps=100,
)
METAWORLD = TaskInfo(
    name="metaworld.fake",
    family="metaworld",
    jat_name="metaworld-fake",
    obs_spec={CONTINUOUS_OBS: ContinuousSpec((39,))},
    action_spec=ContinuousSpec((4,)),
    max_episode_steps=500,
)


def _write_local_jat(tmp_path, rows: dict, features, fmt: str):
    """A tiny dataset in the hub's format (JAT columns only), as parquet or save_to_disk."""
    import datasets

    ds = datasets.Dataset.from_dict(rows, features=features)
    if fmt == "parquet":
        path = tmp_path / "local_jat" / "train-00000.parquet"
        path.parent.mkdir()
        ds.to_parquet(str(path))
        return path.parent
    ds.save_to_disk(str(tmp_path / "saved"))
    return tmp_path / "saved"


@pytest.mark.parametrize("fmt", ["parquet", "save_to_disk"])
def test_hub_loader_atari_84x84x4_to_image_spec(tmp_path, fmt):
    import datasets

    rng = np.random.default_rng(0)
    # Hub Atari rows: 84x84 grayscale stacks of 4 frames per step (stored as 4-channel images).
    stacks = [rng.integers(0, 256, size=(t, 84, 84, 4), dtype=np.uint8) for t in (3, 5)]
    from PIL import Image

    rows = {
        IMAGE_OBS: [[Image.fromarray(f) for f in s] for s in stacks],
        DISCRETE_ACT: [[1, 2, 3], [0, 0, 5, 5, 1]],
        "rewards": [[0.0, 1.0, 0.0], [0.0, 0.0, -1.0, 0.0, 0.0]],
    }
    features = datasets.Features(
        {
            IMAGE_OBS: datasets.Sequence(datasets.Image()),
            DISCRETE_ACT: datasets.Sequence(datasets.Value("int64")),
            "rewards": datasets.Sequence(datasets.Value("float32")),
        }
    )
    local = _write_local_jat(tmp_path, rows, features, fmt)
    eps = list(
        jat.load_hub_task(
            "atari-fake", local_path=local, task_info=ATARI, cache_dir=str(tmp_path / "cache")
        )
    )
    assert [ep.num_steps for ep in eps] == [3, 5]
    assert [ep.episode_index for ep in eps] == [0, 1]
    frames = eps[0].observations[IMAGE_OBS]
    assert frames.shape == (3, 80, 80, 3) and frames.dtype == np.uint8
    # The conversion: newest frame of the stack, bilinear resize, grey repeated over RGB.
    want = np.asarray(Image.fromarray(stacks[0][1][:, :, 3]).resize((80, 80), Image.BILINEAR))
    np.testing.assert_array_equal(frames[1][:, :, 0], want)
    np.testing.assert_array_equal(frames[1][:, :, 0], frames[1][:, :, 2])
    assert eps[1].total_return == -1.0
    np.testing.assert_array_equal(eps[1].actions, [0, 0, 5, 5, 1])
    # The converted episode tokenizes with the env's spec.
    seq = jat.episode_to_sequence(eps[1], ATARI)
    assert seq.validate().num_patches == 5 * 25


def test_hub_loader_continuous_and_shape_check(tmp_path):
    import datasets

    f2 = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
    rows = {
        CONTINUOUS_OBS: [np.ones((4, 39), np.float32).tolist()],
        CONTINUOUS_ACT: [np.zeros((4, 4), np.float32).tolist()],
        "rewards": [[1.0, 2.0, 3.0, 4.0]],
    }
    features = datasets.Features(
        {
            CONTINUOUS_OBS: f2,
            CONTINUOUS_ACT: f2,
            "rewards": datasets.Sequence(datasets.Value("float32")),
        }
    )
    local = _write_local_jat(tmp_path, rows, features, "parquet")
    (ep,) = jat.load_hub_task(
        "metaworld-fake", local_path=local, task_info=METAWORLD, cache_dir=str(tmp_path / "cache")
    )
    assert ep.observations[CONTINUOUS_OBS].shape == (4, 39) and ep.actions.shape == (4, 4)
    assert ep.total_return == 10.0 and ep.task == "metaworld.fake"
    wrong = METAWORLD.__class__(
        **{**METAWORLD.__dict__, "obs_spec": {CONTINUOUS_OBS: ContinuousSpec((12,))}}
    )
    with pytest.raises(ValueError, match="per-step shape"):
        list(
            jat.load_hub_task(
                "metaworld-fake",
                local_path=local,
                task_info=wrong,
                cache_dir=str(tmp_path / "cache"),
            )
        )


@pytest.mark.parametrize(
    "shape, channels",
    [((84, 84, 4), 3), ((4, 84, 84), 1), ((84, 84, 4), 4), ((64, 48, 3), 3), ((84, 84), 3)],
)
def test_convert_image_shapes(shape, channels):
    frame = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    out = jat.convert_image(frame, ImageSpec(32, 48, channels))
    assert out.shape == (32, 48, channels) and out.dtype == np.uint8
