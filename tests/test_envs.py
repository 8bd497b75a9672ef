"""The task registry: names, aliases, specs, determinism, and observations that tokenize."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from gato.envs import (
    CONTINUOUS_OBS,
    DISCRETE_OBS,
    FAMILIES,
    IMAGE_OBS,
    TEXT_OBS,
    get_task,
    list_tasks,
    make_env,
)
from gato.serialize import tokenize_timestep
from gato.specs import ContinuousSpec, DiscreteSpec, ImageSpec, TextSpec, spec_to_dict


class FakeTextTokenizer:
    """Stands in for the SentencePiece model: one token per character."""

    def encode(self, text: str) -> np.ndarray:
        return np.array([ord(c) % 32000 for c in text], np.int64)


# One or two tasks per family, chosen to cover every observation layout and action kind.
SAMPLE_TASKS = [
    "cartpole.swingup",
    "quadruped.walk",
    "metaworld.assembly",
    "babyai.go-to-red-ball",
    "babyai.boss-level",
    "atari.pong",
    "mujoco.hopper",
    "mujoco.humanoid",
]


def test_family_counts():
    counts = {family: len(list_tasks(family)) for family in FAMILIES}
    assert counts == {"dmc": 49, "metaworld": 50, "babyai": 96, "atari": 57, "mujoco": 22}
    assert len(list_tasks()) == sum(counts.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_task_resolves(family):
    for name in list_tasks(family):
        info = get_task(name)
        assert info.name == name and info.family == family
        assert info.max_episode_steps > 0
        spec_to_dict(info.obs_spec)  # JSON-able for dataset headers
        if info.jat_name:
            assert get_task(info.jat_name) == info


def test_jat_aliases():
    assert get_task("metaworld-assembly").name == "metaworld.assembly"
    assert get_task("atari-pong").name == "atari.pong"
    assert get_task("babyai-go-to").name == "babyai.go-to"
    assert get_task("babyai-put-next").name == "babyai.put-next-s7n4"
    assert get_task("mujoco-halfcheetah").name == "mujoco.halfcheetah"
    assert get_task("mujoco-walker").name == "mujoco.walker2d"
    assert get_task("cartpole.swingup").jat_name is None


def test_unknown_names_suggest_close_matches():
    with pytest.raises(ValueError, match="cartpole.swingup"):
        get_task("cartpole.swingpu")
    with pytest.raises(ValueError, match="metaworld.assembly"):
        get_task("metaworld.asembly")
    with pytest.raises(ValueError, match="unknown task"):
        get_task("zzz.nothing-like-it")


def test_declared_specs():
    assert get_task("babyai.go-to").obs_spec == {
        DISCRETE_OBS: DiscreteSpec((148,), 11),
        TEXT_OBS: TextSpec(),
    }
    assert get_task("atari.boxing").obs_spec == {IMAGE_OBS: ImageSpec(80, 80, 3)}
    assert get_task("atari.boxing").action_spec == DiscreteSpec((), 18)
    assert get_task("metaworld.reach").action_spec == ContinuousSpec((4,), -1.0, 1.0)
    assert get_task("mujoco.humanoid").action_spec == ContinuousSpec((17,), -0.4, 0.4)
    assert get_task("cartpole.swingup").obs_components == (("position", 3), ("velocity", 2))
    assert get_task("metaworld.reach").max_episode_steps == 500
    assert get_task("walker.walk").max_episode_steps == 1000


def _check_observation(observation, obs_spec):
    assert set(observation) == set(obs_spec)
    for key, spec in obs_spec.items():
        value = observation[key]
        if isinstance(spec, TextSpec):
            assert isinstance(value, str) and value
        elif isinstance(spec, ImageSpec):
            assert value.shape == spec.shape and value.dtype == np.uint8
        elif isinstance(spec, DiscreteSpec):
            assert value.shape == spec.shape and value.dtype == np.int64
            assert value.min() >= 0 and value.max() < spec.n
        else:
            assert value.shape == spec.shape and value.dtype == np.float32
            assert np.isfinite(value).all()


def _equal(a, b) -> bool:
    return all(a[k] == b[k] if isinstance(a[k], str) else np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("task", SAMPLE_TASKS)
def test_env_matches_spec_is_deterministic_and_tokenizes(task):
    info = get_task(task)
    env = make_env(task, seed=0)
    first, _ = env.reset(seed=7)
    again, _ = env.reset(seed=7)
    assert _equal(first, again), "reset(seed=) must be deterministic"
    other = make_env(task, seed=0).reset(seed=7)[0]
    assert _equal(first, other), "a fresh env reset with the same seed must agree"
    _check_observation(first, info.obs_spec)
    env.action_space.seed(0)
    for _ in range(3):
        action = env.action_space.sample()
        observation, reward, terminated, truncated, _ = env.step(action)
        _check_observation(observation, info.obs_spec)
        assert np.isfinite(reward)
        seq = tokenize_timestep(
            observation, action, info.obs_spec, info.action_spec, text_tokenizer=FakeTextTokenizer()
        )
        assert seq.loss_mask.sum() == info.action_spec.size
    env.close()


def test_babyai_observation_is_direction_then_view():
    env = make_env("babyai.go-to-red-ball")
    observation, _ = env.reset(seed=3)
    raw = env.unwrapped.gen_obs()
    assert observation[DISCRETE_OBS][0] == raw["direction"]
    np.testing.assert_array_equal(observation[DISCRETE_OBS][1:], raw["image"].reshape(-1))
    assert observation[TEXT_OBS] == raw["mission"]


def test_atari_image_size_is_configurable():
    env = make_env("atari.breakout", image_size=(96, 64))
    observation, _ = env.reset(seed=0)
    assert observation[IMAGE_OBS].shape == (96, 64, 3)
    with pytest.raises(ValueError, match="multiple of 16"):
        make_env("atari.breakout", image_size=(84, 84))


def test_render_rgb_array():
    env = make_env("cartpole.balance", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


@pytest.mark.slow
def test_dmc_table_matches_the_suite():
    from gato.envs.dmc import DMControlEnv

    for name in list_tasks("dmc"):
        domain, task = name.split(".", 1)
        env = DMControlEnv(domain, task, seed=0)
        components = tuple(
            (key, int(np.prod(spec.shape)))
            for key, spec in sorted(env.dm_env.observation_spec().items())
        )
        assert components == get_task(name).obs_components, name


def test_mujoco_table_matches_gymnasium():
    for name in list_tasks("mujoco"):
        info = get_task(name)
        env = make_env(name)
        assert env.observation_space[CONTINUOUS_OBS].shape == info.obs_spec[CONTINUOUS_OBS].shape
        assert env.action_space.shape == info.action_spec.shape
        assert np.all(env.action_space.low == info.action_spec.low), name
        assert np.all(env.action_space.high == info.action_spec.high), name
        assert env.spec.max_episode_steps == info.max_episode_steps, name


# Every family, and the levels with the most generated state: Meta-World once drew a task's goal
# list from the seed the env was made with, so a reused env's episodes depended on its history.
REUSE_TASKS = [
    "cartpole.swingup",
    "metaworld.reach",
    "metaworld.pick-place",
    "babyai.go-to-red-ball",
    "babyai.boss-level",
    "atari.pong",
    "mujoco.hopper",
]


def _rollout(env, task: str, seed: int, steps: int = 60) -> bytes:
    """The episode from reset(seed) under a fixed action sequence, as the bytes of everything
    the env returned (observations, rewards, end flags)."""
    spec = get_task(task).action_spec
    actions = np.random.default_rng(1234)  # the same actions whatever the seed
    observation, _ = env.reset(seed=seed)
    record = [observation]
    for _ in range(steps):
        if isinstance(spec, DiscreteSpec):
            action = int(actions.integers(spec.n))
        else:
            action = actions.uniform(spec.low, spec.high, spec.shape).astype(np.float32)
        observation, reward, terminated, truncated, _ = env.step(action)
        record.append((observation, reward, terminated, truncated))
        if terminated or truncated:
            break
    return pickle.dumps(record)


@pytest.mark.parametrize("task", REUSE_TASKS)
def test_a_reused_env_replays_a_fresh_envs_episode(task):
    """Episode = f(task, reset seed): not the seed the env was made with, nor what ran before."""
    fresh = _rollout(make_env(task, seed=11), task, seed=5)
    env = make_env(task, seed=0)
    others = [_rollout(env, task, seed) for seed in (0, 9)]
    assert _rollout(env, task, seed=5) == fresh
    if task.startswith("metaworld."):  # the goal differs per seed, from the first observation
        assert fresh not in others
    env.close()


def test_babyai_reset_keeps_minigrids_rejection_prints_out_of_stdout(capsys):
    """minigrid prints a line for every level layout it rejects and redraws; our env keeps
    them out of stdout (a 5,000-episode collection printed thousands), the raw env does not."""
    import gymnasium as gym

    from gato.envs import get_task, make_env

    info = get_task("babyai.go-to-local")
    raw = gym.make(info.env_id, disable_env_checker=True)
    for seed in range(40):
        raw.reset(seed=seed)
    assert "Sampling rejected" in capsys.readouterr().out  # these seeds do reject layouts
    env = make_env(info.name)
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
    assert capsys.readouterr().out == ""
    assert obs["text_observations"]  # the mission is still there
