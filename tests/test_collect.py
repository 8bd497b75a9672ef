"""Collection: metadata, the paper's expert return and 80% filter, reproducibility, resuming."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gato import collect
from gato import datasets as store
from gato.envs.task import TaskInfo
from gato.jat import CONTINUOUS_OBS, TEXT_OBS, iter_episodes, shard_paths
from gato.specs import ContinuousSpec, DiscreteSpec, TextSpec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------- a tiny fake task (no gym)


FAKE = TaskInfo(
    name="fake.target",
    family="fake",
    jat_name=None,
    obs_spec={CONTINUOUS_OBS: ContinuousSpec((2,)), TEXT_OBS: TextSpec()},
    action_spec=DiscreteSpec((), 3),
    max_episode_steps=20,
)


class FakeEnv:
    """Reward 1 when the action equals the target shown in the observation; the episode length
    and targets depend only on the reset seed."""

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)
        self.t, self.length = 0, 5 + seed % 4
        return self._obs(), {}

    def _obs(self):
        self.target = int(self.rng.integers(0, 3))
        return {
            CONTINUOUS_OBS: np.array([self.target, self.t], np.float32),
            TEXT_OBS: "hit the target",
        }

    def step(self, action):
        reward = float(action == self.target)
        self.t += 1
        done = self.t >= self.length
        return self._obs(), reward, done, False, {"success": done}


class FakePolicy:
    def __init__(self, kind, seed):
        self.kind, self.rng = kind, np.random.default_rng(seed + 12345)

    def reset(self, env, observation):
        pass

    def act(self, observation):
        if self.kind == "expert":
            return int(observation[CONTINUOUS_OBS][0])
        return int(self.rng.integers(0, 3))


def fake_env_fn(task, seed):
    return FakeEnv()


def fake_policy_fn(kind, task, env, seed):
    return FakePolicy(kind, seed)


def collect_fake(data_dir, episodes=6, workers=1, **kw):
    kw = {"shard_size": 2, "random_episodes": 3, "progress": False, **kw}
    return collect.collect_task(
        FAKE,
        episodes,
        data_dir=data_dir,
        workers=workers,
        env_fn=fake_env_fn,
        policy_fn=fake_policy_fn,
        **kw,
    )


# ------------------------------------------------------------ expert return and the filter


@pytest.mark.parametrize(
    "n, w",
    [
        (1, 1),
        (9, 1),
        (10, 1),
        (19, 1),
        (20, 2),
        (29, 2),
        (30, 3),
        (70, 7),
        (10_000, 1000),
        (50_000, 1000),
    ],
)
def test_window_size_rounds_down(n, w):
    assert store.window_size(n) == w


def test_expert_return_hand_computed():
    assert store.expert_return([3.0]) == 3.0
    assert store.expert_return([1, 5, 2, 4, 3, 0, 0, 0, 0, 0]) == 5.0  # N=10 -> W=1: the max
    # N=20 -> W=2: window means are (r_i + r_i+1) / 2; best pair 9+7 at positions 3,4 -> 8.
    r = [1, 2, 3, 9, 7, 1, 10, 0] + [0] * 12
    assert store.expert_return(r) == 8.0
    # N=35 -> W=3 (3.5 rounds down): the best triple is 6,6,6 -> 6, not the lone 10.
    r = [0] * 10 + [10] + [0] * 10 + [6, 6, 6] + [0] * 11
    assert len(r) == 35 and store.expert_return(r) == 6.0
    assert store.expert_return([-5.0, -3.0, -4.0]) == -3.0
    with pytest.raises(ValueError):
        store.expert_return([])


def test_filter_threshold_positive_and_negative_returns():
    assert store.filter_threshold(21.0, -20.3) == pytest.approx(16.8)  # the paper: 0.8 * expert
    assert store.filter_threshold(100.0) == 80.0
    assert store.filter_threshold(0.0, -1.0) == 0.0
    # Negative expert: 80% of the way from random (-500) to expert (-100) -> -180.
    assert store.filter_threshold(-100.0, -500.0) == pytest.approx(-180.0)
    # Negative expert, random unknown or not worse: 20% of the expert's magnitude below it.
    assert store.filter_threshold(-100.0) == pytest.approx(-120.0)
    assert store.filter_threshold(-100.0, -50.0) == pytest.approx(-120.0)
    keep = store.passes_filter([10, 7.9, 8.0, np.float32(8.0) - 1e-7, -1], 8.0)
    assert keep.tolist() == [True, False, True, True, False]


# ---------------------------------------------------------------------------- collection


def test_collect_writes_shards_and_metadata(tmp_path):
    meta = collect_fake(tmp_path, episodes=6)
    folder = tmp_path / FAKE.name
    assert [p.name for p in shard_paths(folder)] == [
        "episodes-000000-000001.parquet",
        "episodes-000002-000003.parquet",
        "episodes-000004-000005.parquet",
    ]
    on_disk = json.loads((folder / "metadata.json").read_text())
    assert on_disk == json.loads(json.dumps(meta))
    assert meta["complete"] and meta["episodes"] == 6 and meta["policy"] == "expert"
    assert meta["seeds"] == list(range(6)) and meta["episode_indices"] == list(range(6))
    assert meta["lengths"] == [5 + s % 4 for s in range(6)]
    assert meta["returns"] == [float(x) for x in meta["lengths"]]  # the expert hits every step
    assert meta["expert_return"] == 8.0 and meta["expert_window"] == 1
    assert meta["success_rate"] == 1.0
    assert meta["random_returns"] and len(meta["random_returns"]) == 3
    assert meta["random_return"] == pytest.approx(np.mean(meta["random_returns"]))
    assert meta["filter_threshold"] == pytest.approx(6.4)
    assert meta["filtered_indices"] == [2, 3] and meta["filtered_episodes"] == 2
    assert meta["obs_spec"]["fields"][TEXT_OBS] == {"type": "text"}
    assert meta["action_spec"] == {"type": "discrete", "shape": [], "n": 3}
    # Training reads only the filtered episodes; all of them on request.
    assert [ep.episode_index for ep in store.load_task_episodes(FAKE.name, tmp_path)] == [2, 3]
    eps = store.load_task_episodes(FAKE.name, tmp_path, filtered=False)
    assert [ep.episode_index for ep in eps] == list(range(6))
    assert eps[0].observations[TEXT_OBS][0] == "hit the target"


def test_data_dir_env_var_and_missing_data_message(tmp_path, monkeypatch):
    monkeypatch.setenv(store.DATA_ENV_VAR, str(tmp_path / "elsewhere"))
    assert store.data_root() == tmp_path / "elsewhere"
    assert store.data_root(tmp_path) == tmp_path
    with pytest.raises(FileNotFoundError, match="make data"):
        store.load_task_episodes("cartpole.balance")


def test_collection_is_reproducible_and_random_policy(tmp_path):
    a = collect_fake(tmp_path / "a", episodes=4)
    b = collect_fake(tmp_path / "b", episodes=4, shard_size=3)  # other shard boundaries
    for key in ("returns", "lengths", "random_returns", "seeds"):
        assert a[key] == b[key]
    ra = collect_fake(tmp_path / "r", episodes=4, policy="random")
    assert ra["policy"] == "random" and ra["returns"] != a["returns"]


def _snapshot(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shard_paths(folder)}


def test_resume_after_interrupted_collection(tmp_path, monkeypatch):
    reference = collect_fake(tmp_path / "ref", episodes=8)
    monkeypatch.setenv(collect.CRASH_AT_EPISODE_ENV, "5")
    with pytest.raises(RuntimeError, match="injected"):
        collect_fake(tmp_path / "run", episodes=8)
    folder = tmp_path / "run" / FAKE.name
    before = _snapshot(folder)
    assert sorted(before) == ["episodes-000000-000001.parquet", "episodes-000002-000003.parquet"]
    assert not json.loads((folder / "metadata.json").read_text())["complete"]
    with pytest.raises(RuntimeError, match="interrupted"):
        store.load_task_episodes(FAKE.name, tmp_path / "run")
    monkeypatch.delenv(collect.CRASH_AT_EPISODE_ENV)
    meta = collect_fake(tmp_path / "run", episodes=8)
    after = _snapshot(folder)
    assert {k: after[k] for k in before} == before  # finished shards were not rewritten
    assert len(after) == 4
    for key in ("returns", "lengths", "seeds", "random_returns", "expert_return"):
        assert meta[key] == reference[key]
    # Asking for more episodes later collects only the new indices.
    more = collect_fake(tmp_path / "run", episodes=10)
    assert more["episodes"] == 10 and {k: _snapshot(folder)[k] for k in after} == after
    # Re-running a complete collection collects nothing and starts no worker.
    again = collect_fake(tmp_path / "run", episodes=10, workers=2)
    assert again["returns"] == more["returns"] and len(_snapshot(folder)) == 5


def test_resume_refuses_other_settings(tmp_path):
    collect_fake(tmp_path, episodes=2)
    with pytest.raises(SystemExit, match="other settings"):
        collect_fake(tmp_path, episodes=2, seed=5)


@pytest.mark.slow  # spawning 2 workers twice: ~8-11 s on 2 shared cores
def test_workers_killed_mid_write_then_resume(tmp_path, monkeypatch):
    """Two spawned workers; the one writing episode 2's shard is SIGKILLed before its rename."""
    monkeypatch.setenv(collect.CRASH_IN_WRITE_ENV, "2")
    with pytest.raises(Exception) as err:
        collect_fake(tmp_path, episodes=6, workers=2, random_episodes=0)
    assert type(err.value).__name__ == "BrokenProcessPool"
    folder = tmp_path / FAKE.name
    names = [p.name for p in shard_paths(folder)]
    assert "episodes-000002-000003.parquet" not in names
    monkeypatch.delenv(collect.CRASH_IN_WRITE_ENV)
    meta = collect_fake(tmp_path, episodes=6, workers=2, random_episodes=0)
    assert meta["episodes"] == 6 and meta["seeds"] == list(range(6))
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]
    assert sorted(ep.episode_index for ep in iter_episodes(folder)) == list(range(6))


# ------------------------------------------------------------------------ the CLI, real tasks


def _cli(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "gato.collect", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_help_explains_every_flag():
    out = _cli("--help")
    assert out.returncode == 0
    for flag in (
        "--task",
        "--suite",
        "--episodes",
        "--workers",
        "--data-dir",
        "--seed",
        "--policy",
        "--shard-size",
        "--random-episodes",
        "--max-steps",
    ):
        assert flag in out.stdout


def test_suite_tasks_exist():
    from gato import envs, experts

    for suite in collect.SUITES.values():
        for task in suite:
            info = envs.get_task(task)
            assert info.name == task
            assert experts.has_expert(task), task


def test_cli_unknown_task(tmp_path):
    out = _cli("--task", "no-such-task", "--data-dir", str(tmp_path))
    assert out.returncode == 2 and "unknown task" in out.stderr


@pytest.mark.slow
def test_cli_end_to_end_babyai_two_workers_with_resume(tmp_path):
    task = "babyai.go-to-red-ball"
    args = [
        "--task",
        task,
        "--episodes",
        "6",
        "--workers",
        "2",
        "--shard-size",
        "2",
        "--random-episodes",
        "2",
        "--data-dir",
        str(tmp_path),
        "--no-progress",
    ]
    env = {**os.environ, collect.CRASH_AT_EPISODE_ENV: "4"}
    out = _cli(*args, env=env)
    assert out.returncode == 1, out.stderr
    assert "run the same command again to resume" in out.stderr
    out = _cli(*args)
    assert out.returncode == 0, out.stderr
    meta = store.read_metadata(task, tmp_path)
    assert meta["complete"] and meta["episodes"] == 6 and meta["success_rate"] == 1.0
    assert meta["filtered_episodes"] >= 1
    from gato.envs import get_task
    from gato.jat import episode_to_sequence

    info = get_task(task)
    for ep in store.load_task_episodes(task, tmp_path):
        episode_to_sequence(ep, info).validate()


# ------------------------------------------------ episodes that do not depend on the workers


@pytest.mark.slow  # two metaworld.reach collections, one with 2 spawned workers: ~15 s
def test_one_and_two_workers_write_identical_metaworld_episodes(tmp_path):
    """Episode i depends on (task, seed + i) only: with 2 workers, episodes 2-3 run in another
    process whose env was made with another seed, and with 1 worker after episodes 0-1."""
    from gato.envs import get_task

    info = get_task("metaworld.reach")
    loaded = {}
    for workers in (1, 2):
        meta = collect.collect_task(
            info,
            4,
            data_dir=tmp_path / str(workers),
            seed=3,
            workers=workers,
            random_episodes=0,
            max_steps=80,
            progress=False,
        )
        assert meta["seeds"] == [3, 4, 5, 6]
        folder = tmp_path / str(workers) / info.name
        loaded[workers] = {ep.episode_index: ep for ep in iter_episodes(folder)}
    one, two = loaded[1], loaded[2]
    assert sorted(one) == sorted(two) == [0, 1, 2, 3]
    assert len(shard_paths(tmp_path / "1" / info.name)) == 1
    assert len(shard_paths(tmp_path / "2" / info.name)) == 2
    for i in one:
        a, b = one[i], two[i]
        assert (a.seed, a.success) == (b.seed, b.success)
        for key in a.observations:
            assert a.observations[key].dtype == b.observations[key].dtype
            assert a.observations[key].tobytes() == b.observations[key].tobytes(), (i, key)
        assert a.actions.tobytes() == b.actions.tobytes(), i
        assert a.rewards.tobytes() == b.rewards.tobytes(), i
    # Different seeds still give different episodes (the comparison above can fail).
    first, second = (one[i].observations[CONTINUOUS_OBS] for i in (0, 1))
    assert first.tobytes() != second.tobytes()
