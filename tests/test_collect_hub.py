"""Issue 15 items 3 and 4: `python -m gato.collect --from-hub` on local data in the hub's features.

The fixtures are parquet files written with `datasets` in the JAT dataset's exact features
(fixed-length `Sequence(..., length=n)` per-step lists, `Sequence(Image())` frames), laid out as
the hub's repository is (`<config>/train-00000-of-00001.parquet`, `test-...`). Nothing is
downloaded: the hub path itself is exercised through a stand-in for `datasets.load_dataset`.
"""

from __future__ import annotations

import json
import os

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from gato import collect_hub, scores
from gato import datasets as store
from gato.collect import collect_task, main
from gato.envs import get_task
from gato.envs.atari import minimal_action_set
from gato.errors import UserError
from gato.jat import HUB_REPO, IMAGE_OBS, iter_episodes, shard_paths

BABYAI = "babyai-go-to-red-ball"
MISSION = "go to the red ball"


def _babyai_rows(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rows = {"text_observations": [], "discrete_observations": [], "discrete_actions": []}
    rows["rewards"] = []
    for i in range(n):
        t = int(rng.integers(2, 7))
        rows["text_observations"].append([MISSION] * t)
        rows["discrete_observations"].append(rng.integers(0, 11, size=(t, 148)).tolist())
        rows["discrete_actions"].append(rng.integers(0, 7, size=t).tolist())
        won = i % 3 != 0  # every third episode fails (return 0)
        rows["rewards"].append([0.0] * (t - 1) + [round(1 - 0.9 * t / 64, 4) if won else 0.0])
    return rows


BABYAI_FEATURES = datasets.Features(
    {
        "text_observations": datasets.Sequence(datasets.Value("string")),
        "discrete_observations": datasets.Sequence(
            datasets.Sequence(datasets.Value("int64"), length=148)
        ),
        "discrete_actions": datasets.Sequence(datasets.Value("int64")),
        "rewards": datasets.Sequence(datasets.Value("float32")),
    }
)


def _write_config(root, config: str, features, train: dict, test: dict | None = None):
    """The hub repository's layout: one folder per config, train and test parquet files."""
    folder = root / config
    folder.mkdir(parents=True)
    datasets.Dataset.from_dict(train, features=features).to_parquet(
        str(folder / "train-00000-of-00001.parquet")
    )
    if test is not None:
        datasets.Dataset.from_dict(test, features=features).to_parquet(
            str(folder / "test-00000-of-00001.parquet")
        )
    return folder


@pytest.fixture
def hub(tmp_path):
    root = tmp_path / "hub"
    _write_config(root, BABYAI, BABYAI_FEATURES, _babyai_rows(20, 0), _babyai_rows(3, 1))
    return root


def _run(hub, data, *extra) -> int:
    argv = ["--from-hub", BABYAI, "--hub-path", str(hub), "--data-dir", str(data)]
    return main([*argv, "--workers", "1", "--random-episodes", "3", "--no-progress", *extra])


def test_babyai_rows_become_a_task_folder_with_collections_metadata(hub, tmp_path):
    # The hub's file really has the fixed-length feature the project's shards do not.
    hub_schema = pq.read_schema(hub / BABYAI / "train-00000-of-00001.parquet")
    assert pa.types.is_fixed_size_list(hub_schema.field("discrete_observations").type.value_type)
    data = tmp_path / "data"
    assert _run(hub, data, "--episodes", "30") == 0
    meta = store.read_metadata("babyai.go-to-red-ball", data)
    train = _babyai_rows(20, 0)
    returns = [float(np.sum(np.float32(r), dtype=np.float64)) for r in train["rewards"]]
    assert meta["complete"] and meta["source"] == f"hub:{HUB_REPO}/{BABYAI}"
    assert meta["episodes"] == 20 and meta["hub_rows"] == 20  # the test split is not mixed in
    np.testing.assert_allclose(meta["returns"], returns, rtol=1e-6)
    assert meta["expert_window"] == 2  # W = min(1000, 0.1 N)
    assert meta["expert_return"] == pytest.approx(store.expert_return(returns))
    assert meta["filtered_indices"] == [i for i, r in enumerate(returns) if r >= 0.8 * max(
        np.convolve(returns, [0.5, 0.5], "valid"))]  # fmt: skip
    assert meta["successes"] == [r > 0 for r in returns]  # BabyAI: the rewards say
    assert len(meta["random_returns"]) == 3 and meta["random_return"] is not None
    assert meta["random_max_steps"] == max(meta["lengths"]) == max(len(r) for r in train["rewards"])
    # The stored episodes are the hub's rows, in order.
    eps = sorted(iter_episodes(data / "babyai.go-to-red-ball"), key=lambda e: e.episode_index)
    assert [e.episode_index for e in eps] == list(range(20))
    np.testing.assert_array_equal(
        eps[4].observations["discrete_observations"], train["discrete_observations"][4]
    )
    np.testing.assert_array_equal(eps[4].actions, train["discrete_actions"][4])
    assert eps[4].observations["text_observations"][0] == MISSION
    # One schema with shards gato.collect writes: the tables concatenate as they are.
    own = tmp_path / "own"
    collect_task(get_task("babyai.go-to-red-ball"), 1, data_dir=own, workers=1,
                 random_episodes=0, progress=False)  # fmt: skip
    mine = pq.read_table(shard_paths(own / "babyai.go-to-red-ball")[0])
    theirs = pq.read_table(shard_paths(data / "babyai.go-to-red-ball")[0])
    assert theirs.schema.equals(mine.schema, check_metadata=True)
    assert pa.concat_tables([mine, theirs]).num_rows == mine.num_rows + theirs.num_rows
    # The score table's entry comes from these returns and says so (item 4).
    entry = scores.table_from_data(data)["babyai.go-to-red-ball"]
    assert entry["expert"] == round(meta["expert_return"], 4)
    assert entry["random"] == round(meta["random_return"], 4)
    assert entry["source"]["expert"].endswith(f"over 20 episodes from hub:{HUB_REPO}/{BABYAI}")
    cap = meta["random_max_steps"]
    assert entry["source"]["random"] == (
        f"mean of 3 random-policy rollouts here, at most {cap} steps (the hub episodes' longest)"
    )
    assert entry["source"]["env"].startswith("BabyAI-GoToRedBall")
    out = tmp_path / "scores.json"
    assert scores.main(["--update-from", str(data), "--out", str(out)]) == 0
    assert "babyai.go-to-red-ball" in json.loads(out.read_text())["tasks"]


def test_resume_skips_stored_rows_and_recollects_a_damaged_shard(hub, tmp_path):
    data = tmp_path / "data"
    assert _run(hub, data, "--episodes", "7", "--shard-size", "3") == 0
    folder = data / "babyai.go-to-red-ball"
    names = [p.name for p in shard_paths(folder)]
    assert names == [f"episodes-{a:06d}-{b:06d}.parquet" for a, b in [(0, 2), (3, 5), (6, 6)]]
    first = os.stat(folder / names[0])
    randoms = store.read_metadata("babyai.go-to-red-ball", data)["random_returns"]
    damaged = folder / names[1]
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated: its rows are stored again
    assert _run(hub, data, "--episodes", "12", "--shard-size", "3") == 0
    again = os.stat(folder / names[0])
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # skipped
    assert (folder / (names[1] + ".corrupt")).is_file()
    meta = store.read_metadata("babyai.go-to-red-ball", data)
    assert meta["episode_indices"] == list(range(12)) and meta["random_returns"] == randoms
    one_go = tmp_path / "one"
    assert _run(hub, one_go, "--episodes", "12") == 0
    ref = store.read_metadata("babyai.go-to-red-ball", one_go)
    for key in ("returns", "lengths", "expert_return", "filtered_indices", "random_returns"):
        assert meta[key] == ref[key], key


def test_a_folder_of_collected_episodes_is_refused(hub, tmp_path):
    data = tmp_path / "data"
    collect_task(get_task("babyai.go-to-red-ball"), 1, data_dir=data, workers=1,
                 random_episodes=0, progress=False)  # fmt: skip
    with pytest.raises(UserError, match="another source"):
        _run(hub, data, "--episodes", "3")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--from-hub", "babyai-go-to-red-ball", "--task", "cartpole.balance"], "exactly one"),
        (["--from-hub", "babyai-go-to-red-ball", "--noise", "0.1"], "not with --from-hub"),
        (["--task", "cartpole.balance", "--hub-path", "x"], "--hub-path goes with --from-hub"),
    ],
)
def test_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_config_errors_are_one_line(hub, tmp_path):
    with pytest.raises(UserError, match="not in the JAT dataset"):
        collect_hub.resolve_configs("cartpole.balance")
    with pytest.raises(UserError, match="no .*babyai-open"):
        main(["--from-hub", "babyai-open", "--hub-path", str(hub), "--data-dir", str(tmp_path)])
    assert collect_hub.resolve_configs("babyai.go-to-red-ball,atari-pong") == [BABYAI, "atari-pong"]
    assert len(collect_hub.resolve_configs("all")) == 157


def test_atari_frames_and_minimal_actions(tmp_path):
    rng = np.random.default_rng(0)
    stacks = [rng.integers(0, 256, size=(t, 84, 84, 4), dtype=np.uint8) for t in (3, 4)]
    rows = {
        IMAGE_OBS: [[Image.fromarray(f) for f in s] for s in stacks],
        "discrete_actions": [[0, 2, 5], [1, 3, 4, 0]],  # Pong's minimal set has 6 actions
        "rewards": [[0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 1.0]],
    }
    features = datasets.Features(
        {
            IMAGE_OBS: datasets.Sequence(datasets.Image()),
            "discrete_actions": datasets.Sequence(datasets.Value("int64")),
            "rewards": datasets.Sequence(datasets.Value("float32")),
        }
    )
    _write_config(tmp_path / "hub", "atari-pong", features, rows)
    data = tmp_path / "data"
    argv = ["--from-hub", "atari-pong", "--hub-path", str(tmp_path / "hub"), "--data-dir"]
    assert (
        main([*argv, str(data), "--workers", "1", "--random-episodes", "1", "--no-progress"]) == 0
    )
    eps = list(iter_episodes(data / "atari.pong"))
    assert eps[0].observations[IMAGE_OBS].shape == (3, 80, 80, 3)  # sides multiples of 16
    full = minimal_action_set("atari.pong")
    np.testing.assert_array_equal(eps[0].actions, [full[0], full[2], full[5]])
    meta = store.read_metadata("atari.pong", data)
    assert meta["returns"] == [1.0, 0.0] and meta["successes"] == [None, None]
    assert meta["random_max_steps"] == 4  # the random policy plays the hub episodes' horizon


def test_streams_from_the_hub_only_without_a_local_path(hub, tmp_path, monkeypatch):
    table = pq.read_table(hub / BABYAI / "train-00000-of-00001.parquet")
    calls = []

    def fake_load_dataset(path, name=None, split=None, streaming=False, **kwargs):
        calls.append((path, name, split, streaming))
        rows = table.to_pylist()
        return datasets.IterableDataset.from_generator(lambda: iter(rows))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = tmp_path / "data"
    base = ["--from-hub", BABYAI, "--data-dir", str(data), "--workers", "1", "--no-progress"]
    assert main([*base, "--random-episodes", "1", "--episodes", "4"]) == 0
    assert main([*base, "--random-episodes", "1", "--episodes", "6"]) == 0  # skips rows 0-3
    assert calls == [(HUB_REPO, BABYAI, "train", True)] * 2
    meta = store.read_metadata("babyai.go-to-red-ball", data)
    assert meta["episode_indices"] == list(range(6)) and meta["hub_rows"] is None
    want = [float(np.sum(np.float32(r), dtype=np.float64)) for r in table["rewards"].to_pylist()]
    np.testing.assert_allclose(meta["returns"], want[:6], rtol=1e-6)


def test_one_debug_training_step_on_collected_and_hub_folders(hub, tmp_path):
    from gato.train import main as train

    data = tmp_path / "data"
    assert _run(hub, data, "--episodes", "12") == 0
    collect_task(get_task("cartpole.balance"), 3, data_dir=data, workers=1, random_episodes=1,
                 progress=False, max_steps=30)  # fmt: skip
    last = train(["--size", "debug", "--data-dir", str(data), "--run-dir", str(tmp_path / "run"),
                  "--tasks", "cartpole.balance,babyai.go-to-red-ball", "--steps", "1",
                  "--batch-size", "2", "--seq-len", "512", "--num-workers", "0",
                  "--eval-every", "1", "--eval-batches", "1", "--log-every", "1",
                  "--ckpt-every", "1", "--warmup-steps", "1"])  # fmt: skip
    assert np.isfinite(last["loss"])


def test_make_data_hub_configs_exist_and_stay_clear_of_make_data():
    import re
    from pathlib import Path

    from gato.collect_suites import SUITES

    text = Path(__file__).resolve().parents[1].joinpath("Makefile").read_text()
    configs = []
    for name in ("HUB_CONFIGS", "HUB_ATARI_CONFIGS"):
        value = re.search(rf"^{name} \?= ((?:.*\\\n)*.*)$", text, re.M).group(1)
        configs += [c for c in value.replace("\\\n", "").split(",") if c]
    assert len(configs) == 21
    tasks = {get_task(c).name for c in collect_hub.resolve_configs(",".join(configs))}
    assert len(tasks) == 21 and not tasks & set(SUITES["default"])  # no folder clash


def test_mujoco_fixed_length_vectors_and_a_missing_split(tmp_path):
    rng = np.random.default_rng(0)
    lengths = (5, 8, 6)
    rows = {
        "continuous_observations": [rng.normal(size=(t, 11)).astype(np.float32) for t in lengths],
        "continuous_actions": [rng.uniform(-1, 1, (t, 3)).astype(np.float32) for t in lengths],
        "rewards": [np.ones(t, np.float32) for t in lengths],
    }
    f32 = datasets.Value("float32")
    features = datasets.Features(
        {
            "continuous_observations": datasets.Sequence(datasets.Sequence(f32, length=11)),
            "continuous_actions": datasets.Sequence(datasets.Sequence(f32, length=3)),
            "rewards": datasets.Sequence(f32),
        }
    )
    hub = tmp_path / "hub"
    _write_config(
        hub, "mujoco-hopper", features, {k: [v.tolist() for v in x] for k, x in rows.items()}
    )
    data = tmp_path / "data"
    base = ["--from-hub", "mujoco-hopper", "--hub-path", str(hub), "--data-dir", str(data)]
    assert main([*base, "--workers", "1", "--random-episodes", "2", "--no-progress"]) == 0
    eps = sorted(iter_episodes(data / "mujoco.hopper"), key=lambda e: e.episode_index)
    np.testing.assert_allclose(
        eps[1].observations["continuous_observations"], rows["continuous_observations"][1]
    )
    np.testing.assert_allclose(eps[2].actions, rows["continuous_actions"][2])
    meta = store.read_metadata("mujoco.hopper", data)
    assert meta["returns"] == [5.0, 8.0, 6.0] and meta["expert_return"] == 8.0  # W = 1
    assert meta["successes"] == [None] * 3 and meta["success_rate"] is None  # nothing says
    assert meta["random_max_steps"] == 8 and max(meta["lengths"]) == 8
    with pytest.raises(UserError, match="no test parquet files"):
        main([*base, "--hub-split", "test", "--data-dir", str(tmp_path / "other")])
