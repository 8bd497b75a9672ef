"""gato.layout_check: timestep lengths as gato.serialize lays them out, the refusal naming the
task and the limits, and the debug and small sizes holding every task of the collect suites."""

from __future__ import annotations

import numpy as np
import pytest

from gato.config import get_config
from gato.data_sources import TaskEpisodes
from gato.jat import Episode
from gato.layout_check import (
    LayoutError,
    TaskLayout,
    check_tasks_fit,
    layouts_from_sources,
    timestep_tokens,
)
from gato.serialize import tokenize_timestep
from gato.specs import ContinuousSpec, DiscreteSpec, ImageSpec, TextSpec


class CharText:
    """One id per character: text lengths are known without the SentencePiece model."""

    def encode(self, text: str) -> np.ndarray:
        return np.array([ord(c) % 97 + 3 for c in text], np.int64)


OBS = {
    "image_observations": ImageSpec(32, 32, 3),  # 4 patches
    "continuous_observations": ContinuousSpec((3,)),
    "discrete_observations": DiscreteSpec((2,), 10),
    "text_observations": TextSpec(),
}
ACTION = ContinuousSpec((2,))


def _observation(mission: str) -> dict:
    return {
        "image_observations": np.zeros((32, 32, 3), np.uint8),
        "continuous_observations": np.zeros(3, np.float32),
        "discrete_observations": np.zeros(2, np.int64),
        "text_observations": mission,
    }


def test_timestep_length_is_the_serialized_length():
    for mission in ("", "go", "pick up the purple box"):
        serialized = tokenize_timestep(
            _observation(mission), np.zeros(2), OBS, ACTION, text_tokenizer=CharText()
        )
        layout = TaskLayout("synthetic.task", OBS, ACTION, text_tokens=len(mission))
        assert timestep_tokens(layout) == len(serialized) == 4 + 3 + 2 + len(mission) + 1 + 2
        assert int(serialized.local_positions.max()) == len(serialized) - 1


def test_layouts_from_data_measure_the_longest_mission():
    missions = ["go to the red ball", "open the door", "go to the purple box and the key"]
    episodes = []
    for i, mission in enumerate(missions):
        obs = {
            "image_observations": np.zeros((3, 32, 32, 3), np.uint8),
            "continuous_observations": np.zeros((3, 3), np.float32),
            "discrete_observations": np.zeros((3, 2), np.int64),
            "text_observations": [mission] * 3,
        }
        actions, rewards = np.zeros((3, 2), np.float32), np.zeros(3, np.float32)
        episodes.append(Episode("synthetic.task", obs, actions, rewards, seed=i, episode_index=i))
    source = TaskEpisodes("synthetic.task", "babyai", OBS, ACTION, episodes, CharText())
    (layout,) = layouts_from_sources([source])
    longest = max(len(m) for m in missions)
    assert layout.text_tokens == longest
    assert timestep_tokens(layout) == source.longest_timestep() == 4 + 3 + 2 + longest + 1 + 2


def test_too_small_a_model_is_refused_naming_the_task_and_the_limits():
    layout = TaskLayout("synthetic.task", OBS, ACTION, text_tokens=10)  # 22 tokens
    check_tasks_fit([layout], get_config("debug", max_local_positions=22, block_size=22))
    with pytest.raises(LayoutError) as e:
        check_tasks_fit([layout], get_config("debug", max_local_positions=21, block_size=64))
    message = str(e.value)
    assert "'synthetic.task'" in message and "22 tokens" in message
    assert "19 observation + '|' + 2 action" in message
    assert "21 local positions (max_local_positions)" in message and "token context" not in message
    with pytest.raises(LayoutError, match=r"model.s 21-token context \(context_tokens\)"):
        check_tasks_fit([layout], get_config("debug"), context_tokens=21)
    with pytest.raises(LayoutError, match=r"model.s 16-token context \(block_size\)"):
        check_tasks_fit([layout], get_config("debug", block_size=16))
    assert "\n" not in message  # one line for a command's error exit


def test_babyai_text_is_measured_with_the_project_tokenizer():
    from gato.envs import get_task
    from gato.text import get_text_tokenizer

    encode = get_text_tokenizer().encode
    longest = max(len(encode(m)) for m in ("go to the red ball", "go to a red ball"))
    assert timestep_tokens(get_task("babyai.go-to-red-ball")) == 148 + longest + 1 + 1
    with pytest.raises(LayoutError, match="'babyai.go-to-red-ball' has timesteps of 15"):
        check_tasks_fit(
            ["babyai.go-to-red-ball", "cartpole.balance"],
            get_config("79M", max_local_positions=128),
        )


def test_every_suite_task_fits_debug_and_small_with_a_few_timesteps_of_context():
    from gato.collect import SUITES
    from gato.envs import get_task

    tasks = sorted({t for suite in SUITES.values() for t in suite})
    lengths = {t: timestep_tokens(get_task(t)) for t in tasks}
    longest = max(lengths.values())
    assert longest >= lengths["babyai.go-to-red-ball"] > 150  # BabyAI: 148 values and a mission
    for size in ("debug", "small"):
        config = get_config(size)
        check_tasks_fit([get_task(t) for t in tasks], config)
        assert config.block_size >= 3 * longest, (size, longest)
