"""Prompt files: round trips, the restricted unpickler, and clear errors for wrong prompts."""

import os
import pathlib
import pickle
import shutil

import numpy as np
import pytest

from gato.envs import get_task
from gato.errors import UserError
from gato.jat import Episode
from gato.prompts import (
    FORMAT,
    PromptError,
    check_prompt,
    load_prompt,
    main,
    rank_demonstrations,
    restricted_loads,
    save_prompt,
    steps_for_tokens,
    truncate_episode,
)


def cartpole_episode(steps: int = 6, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        "cartpole.balance",
        {"continuous_observations": rng.normal(size=(steps, 5)).astype(np.float32)},
        rng.uniform(-1, 1, (steps, 1)).astype(np.float32),
        rng.uniform(0, 1, steps).astype(np.float32),
        seed=seed,
        episode_index=3,
    )


def babyai_episode(steps: int = 4) -> Episode:
    rng = np.random.default_rng(1)
    return Episode(
        "babyai.go-to-red-ball",
        {
            "discrete_observations": rng.integers(0, 11, (steps, 148)),
            "text_observations": ["go to the red ball"] * steps,
        },
        rng.integers(0, 7, steps),
        np.zeros(steps, np.float32),
        success=True,
    )


@pytest.mark.parametrize("suffix", [".pkl", ".npz", ".json"])
@pytest.mark.parametrize("make", [cartpole_episode, babyai_episode])
def test_round_trip(tmp_path, suffix, make):
    episode = make()
    path = save_prompt(tmp_path / f"demo{suffix}", episode, episode.task)
    assert path == tmp_path / f"demo{suffix}"
    prompt = load_prompt(path, task=episode.task)
    assert prompt.task == episode.task
    for key, value in episode.observations.items():
        got = prompt.episode.observations[key]
        if isinstance(value, list):
            assert list(got) == value
        else:
            np.testing.assert_array_equal(got, value)
            assert np.asarray(got).dtype == value.dtype
    np.testing.assert_array_equal(prompt.episode.actions, episode.actions)
    np.testing.assert_array_equal(prompt.episode.rewards, episode.rewards)
    assert prompt.episode.success == episode.success
    assert prompt.episode.episode_index == episode.episode_index


class TouchOnLoad:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


class SystemOnLoad:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("evil", [TouchOnLoad, SystemOnLoad])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, evil, protocol):
    marker = tmp_path / "pwned"
    payload = {
        "format": FORMAT,
        "version": 1,
        "task": "cartpole.balance",
        "episode": {"observations": {"x": np.zeros(3)}, "hook": evil(marker)},
    }
    path = tmp_path / "demo.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(PromptError, match=r"refusing to load \S+ from a prompt pickle"):
        load_prompt(path)
    assert not marker.exists()
    # The same bytes really are malicious for an unrestricted unpickler.
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_restricted_unpickler_reads_arrays_of_every_protocol():
    data = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "s": np.array(["x", "yz"]),
        "b": b"\x00\xff",
        "t": (1, 2.5, None, {3}),
        "n": np.int64(4),
    }
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        out = restricted_loads(pickle.dumps(data, protocol=protocol))
        np.testing.assert_array_equal(out["a"], data["a"])
        assert out["s"].tolist() == ["x", "yz"] and out["b"] == data["b"]
        assert out["t"] == data["t"] and out["n"] == 4


def test_garbage_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "demo.pkl"
    path.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(PromptError, match="not a readable prompt pickle"):
        load_prompt(path)
    path.write_bytes(pickle.dumps({"some": "dict"}))
    with pytest.raises(PromptError, match="not a gato prompt file"):
        load_prompt(path)


def test_prompt_for_another_task_is_a_clear_error(tmp_path):
    path = save_prompt(tmp_path / "demo.pkl", cartpole_episode(), "cartpole.balance")
    with pytest.raises(
        PromptError, match="demonstration of 'cartpole.balance', not of 'cartpole.swingup'"
    ):
        load_prompt(path, task="cartpole.swingup")
    prompt = load_prompt(path)
    with pytest.raises(PromptError, match="not of 'babyai.go-to-red-ball'"):
        check_prompt(prompt, get_task("babyai.go-to-red-ball"))


def test_wrong_observation_layout_is_a_clear_error(tmp_path):
    bad = cartpole_episode()
    bad.observations["continuous_observations"] = np.zeros((6, 4), np.float32)
    with pytest.raises(PromptError, match=r"continuous_observations has shape \(6, 4\)"):
        save_prompt(tmp_path / "demo.pkl", bad, "cartpole.balance")
    bad.observations = {"discrete_observations": np.zeros((6, 5), np.int64)}
    with pytest.raises(PromptError, match="observation columns"):
        save_prompt(tmp_path / "demo.pkl", bad, "cartpole.balance")
    # A file whose recorded spec is not the task's (e.g. the env changed since it was made).
    path = save_prompt(tmp_path / "demo.pkl", cartpole_episode(), "cartpole.balance")
    data = pickle.loads(path.read_bytes())
    data["obs_spec"]["fields"]["continuous_observations"]["shape"] = [4]
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(PromptError, match="records the observation spec"):
        load_prompt(path, task="cartpole.balance")
    with pytest.raises(PromptError, match="unknown prompt format"):
        save_prompt(tmp_path / "demo.txt", cartpole_episode(), "cartpole.balance")


def test_ranking_and_truncation():
    eps = [cartpole_episode(seed=s) for s in range(4)]
    eps[2].success = False
    eps[2].rewards[:] = 100.0
    for i, e in enumerate(eps):
        e.episode_index = i
    ranked = rank_demonstrations(eps)
    assert ranked[-1] is eps[2]  # failures last, however high their return
    assert [e.total_return for e in ranked[:3]] == sorted(
        (e.total_return for e in ranked[:3]), reverse=True
    )
    short = truncate_episode(babyai_episode(5), 2)
    assert short.num_steps == 2 and len(short.observations["text_observations"]) == 2
    assert steps_for_tokens(get_task("cartpole.balance"), 70) == 10  # 5 + '|' + 1 per step
    assert steps_for_tokens(get_task("atari.pong"), 55) == 3  # 25 patches + '|' + 1 per step
    # BabyAI: 148 grid and direction values + '|' + 1; the mission's text only adds tokens, so
    # 150 per step bounds the steps that make 151 tokens from above.
    assert steps_for_tokens(get_task("babyai.go-to-red-ball"), 151) == 2
    assert steps_for_tokens(get_task("cartpole.balance"), 0) == 1  # never an empty prompt


def test_command_writes_the_best_collected_episode(tmp_path, capsys, collected):
    shutil.copytree(
        collected / "babyai.go-to-red-ball", tmp_path / "data" / "babyai.go-to-red-ball"
    )
    out = tmp_path / "demo.npz"
    assert (
        main(
            [
                "--task",
                "babyai.go-to-red-ball",
                "--out",
                str(out),
                "--data-dir",
                str(tmp_path / "data"),
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    prompt = load_prompt(out, task="babyai.go-to-red-ball")
    assert prompt.episode.success and prompt.episode.total_return > 0.8
    # Nothing collected and no expert to roll out: a clear error, exit status 2.
    (tmp_path / "empty").mkdir()
    with pytest.raises(PromptError) as e:
        main(["--task", "walker.walk", "--out", str(out), "--data-dir", str(tmp_path / "empty")])
    assert "no demonstration of 'walker.walk'" in str(e.value) and "make data" in str(e.value)
    # A --data-dir that does not exist is a mistake, not an empty dataset.
    with pytest.raises(UserError, match="--data-dir .*none does not exist"):
        main(["--task", "walker.walk", "--out", str(out), "--data-dir", str(tmp_path / "none")])


def test_command_from_expert(tmp_path):
    out = tmp_path / "demo.pkl"
    assert (
        main(["--task", "babyai.go-to-red-ball", "--out", str(out), "--from-expert", "--seed", "5"])
        == 0
    )
    prompt = load_prompt(out, task="babyai.go-to-red-ball")
    assert prompt.episode.seed == 5 and prompt.episode.success
