"""Experts beat uniformly random policies on short runs; failures here mean an expert broke."""

from __future__ import annotations

import numpy as np
import pytest

from gato.envs import get_task, make_env
from gato.experts import has_expert, make_expert, make_random_policy
from gato.experts.measure import run_episodes


def test_registry_of_experts():
    assert has_expert("cartpole.swingup") and has_expert("metaworld-assembly")
    assert has_expert("babyai.boss-level") and has_expert("atari.pong")
    assert not has_expert("babyai.key-in-box")  # the bot fails every episode
    assert not has_expert("walker.walk")
    with pytest.raises(ValueError, match="no expert"):
        make_expert("walker.walk", make_env("walker.walk"))


@pytest.mark.parametrize(
    "task", ["cartpole.balance", "metaworld.reach", "babyai.go-to", "atari.pong", "mujoco.hopper"]
)
def test_random_policy_acts_within_the_action_space(task):
    env = make_env(task)
    observation, _ = env.reset(seed=0)
    policy = make_random_policy(task, env, seed=0)
    policy.reset(env, observation)
    spec = get_task(task).action_spec
    for _ in range(5):
        action = policy.act(observation)
        assert env.action_space.contains(np.asarray(action, env.action_space.dtype))
        observation, *_ = env.step(action)
    assert spec is not None


def test_cartpole_balance_expert():
    expert = run_episodes("cartpole.balance", "expert", episodes=1, seed=0)
    random_ = run_episodes("cartpole.balance", "random", episodes=1, seed=0)
    assert expert.returns[0] > 990 and random_.returns[0] < 600


def test_cartpole_swingup_expert():
    expert = run_episodes("cartpole.swingup", "expert", episodes=1, seed=0)
    assert expert.returns[0] > 780  # random: ~30


def test_metaworld_expert_succeeds():
    expert = run_episodes("metaworld.reach", "expert", episodes=1, seed=0)
    random_ = run_episodes("metaworld.reach", "random", episodes=1, seed=0)
    assert expert.successes == [True]
    assert expert.returns[0] > 2 * random_.returns[0]


@pytest.mark.parametrize("task", ["babyai.go-to-red-ball", "babyai.pickup-loc"])
def test_babyai_bot_succeeds(task):
    expert = run_episodes(task, "expert", episodes=3, seed=0)
    assert all(expert.successes)
    assert min(expert.returns) > 0.5


def test_pong_expert_scores_points():
    """Over a short window the RAM controller returns serves, which random play almost never
    does (random scores about -20 per game and wins ~0.3 points per game)."""
    env = make_env("atari.pong", max_episode_steps=2000)
    observation, _ = env.reset(seed=0)
    expert = make_expert("atari.pong", env)
    expert.reset(env, observation)
    points = 0
    for _ in range(2000):
        observation, reward, terminated, truncated, _ = env.step(expert.act(observation))
        points += reward > 0
        if terminated or truncated:
            break
    assert points >= 2
