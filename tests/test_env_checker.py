"""Issue 15 item 1: every registered env passes Gymnasium's own checker, wrapped as users get it.

`gymnasium.utils.env_checker.check_env` (render check skipped) runs on `gato.envs.make_env(task)`,
and `env.spec.make()` must rebuild the same wrapper stack, giving the same episode for a seed.
Gymnasium reports API problems through warnings as well as assertions, so every warning fails the
test except two that are true of these envs by design (listed in EXPECTED_WARNINGS, with why).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from gato.envs import list_tasks, make_env

# One task per family (the fast test); the slow test checks every registered task.
ONE_PER_FAMILY = [
    "cartpole.balance",
    "quadruped.walk",  # DM Control with RescaleAction (uneven actuator bounds)
    "mujoco.ant",  # v4 (JAT's layout)
    "mujoco.humanoid-v5",
    "mujoco.pusher",  # Pusher-v5 for JAT's Pusher-v4, actions in [-2, 2]
    "metaworld.reach",
    "babyai.go-to-red-ball",
    "babyai.synth-seq",  # missions with ', then' and 'after you'
    "atari.pong",
]

EXPECTED_WARNINGS = (
    # check_env is run on the wrapped env on purpose: that is what users get from make_env.
    "is different from the unwrapped version",
    # Continuous observations (joint velocities, positions) have no bounds; the spaces say so.
    "observation space minimum value is -infinity",
    "observation space maximum value is infinity",
    # MuJoCo's own action bounds (InvertedPendulum [-3, 3], Pusher [-2, 2]) are the units JAT
    # recorded actions in; the action spec carries them and the tokenizer rescales to [-1, 1].
    "For Box action spaces, we recommend using a symmetric and normalized space",
)


def _unexpected(caught) -> list[str]:
    messages = [str(w.message) for w in caught]
    return [m for m in messages if not any(e in m for e in EXPECTED_WARNINGS)]


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, str):
        return a == b
    return np.array_equal(np.asarray(a), np.asarray(b))


def check_task(task: str) -> None:
    env = make_env(task, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
        rebuilt = env.spec.make()
    assert not _unexpected(caught), (task, _unexpected(caught))
    # The same wrappers, in the same order, with the same recorded arguments ...
    assert str(rebuilt) == str(env), task
    assert rebuilt.spec.additional_wrappers == env.spec.additional_wrappers, task
    assert rebuilt.observation_space == env.observation_space, task
    assert rebuilt.action_space == env.action_space, task
    # ... and so the same episode: reset and a few steps of one seed agree.
    obs_a, _ = env.reset(seed=7)
    obs_b, _ = rebuilt.reset(seed=7)
    assert _same(obs_a, obs_b), task
    env.action_space.seed(3)
    for _ in range(3):
        action = env.action_space.sample()
        step_a, step_b = env.step(action), rebuilt.step(action)
        assert _same(step_a[0], step_b[0]) and step_a[1] == step_b[1], task
        assert env.observation_space.contains(step_a[0]), task
        if step_a[2] or step_a[3]:
            break
    env.close()
    rebuilt.close()


@pytest.mark.parametrize("task", ONE_PER_FAMILY)
def test_check_env_one_task_per_family(task):
    check_task(task)


def test_the_checker_catches_a_mission_outside_the_space():
    # The failure this file guards against: Gymnasium's default Text charset (no space, no
    # comma) rejects every BabyAI mission, and check_env says so.
    import gymnasium as gym

    env = make_env("babyai.go-to-red-ball")
    env.observation_space = gym.spaces.Dict(
        {**env.observation_space.spaces, "text_observations": gym.spaces.Text(max_length=1024)}
    )
    with pytest.raises(AssertionError, match="observation"):
        check_env(env, skip_render_check=True, skip_close_check=True)


@pytest.mark.slow
def test_check_env_every_registered_task():
    failures = {}
    for task in list_tasks():
        try:
            check_task(task)
        except Exception as error:  # collect all, so one run names every failing task
            failures[task] = f"{type(error).__name__}: {error}"
    # Names first: pytest truncates a long dict, and every failing task should be visible.
    assert not failures, f"{len(failures)} failing: {sorted(failures)}\n" + "\n".join(
        f"{task}: {message[:300]}" for task, message in sorted(failures.items())
    )
