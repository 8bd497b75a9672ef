"""gato.rollout: the one episode loop over N environments, independent of N and of finish order."""

import gymnasium as gym
import numpy as np
import pytest

from gato.envs.task import TaskInfo
from gato.rollout import EpisodeResult, PerEnvActor, RolloutJob, run_rollouts
from gato.specs import ContinuousSpec


class CountdownEnv(gym.Env):
    """An env whose episode length (3-9 steps) and observations depend only on the reset seed,
    and whose reward depends on the action: episodes end at different times."""

    observation_space = gym.spaces.Dict(
        {"continuous_observations": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)}
    )
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self):
        self.frames = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.left = int(self.np_random.integers(3, 10))
        self.x = float(self.np_random.normal())
        return self._obs(), {}

    def _obs(self):
        return {"continuous_observations": np.array([self.x, self.left], np.float32)}

    def step(self, action):
        self.left -= 1
        reward = float(action[0]) * self.x
        self.x = float(self.np_random.normal())
        return self._obs(), reward, self.left == 0, False, {"success": reward > 0.5}

    def render(self):
        self.frames += 1
        return np.full((4, 4, 3), self.left, np.uint8)


class SeededPolicy:
    """A per-episode policy whose actions depend on its job's seed and the observations."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def reset(self, env, obs):
        self.first = obs["continuous_observations"][0]

    def act(self, obs):
        return np.array([np.tanh(self.first + self.rng.normal())], np.float32)


INFO = TaskInfo(
    "test.countdown",
    "dmc",
    None,
    {"continuous_observations": ContinuousSpec((2,))},
    ContinuousSpec((1,)),
    100,
)


def rollout(num_envs, jobs, **kwargs):
    envs = [CountdownEnv() for _ in range(num_envs)]
    actor = PerEnvActor(lambda job, env: SeededPolicy(job.seed))
    return run_rollouts(envs, actor, INFO, jobs, **kwargs), envs


def jobs(n, max_steps=None):
    return [RolloutJob("test.countdown", i, 1000 + i, max_steps) for i in range(n)]


def test_results_do_not_depend_on_the_number_of_envs():
    reference, _ = rollout(1, jobs(11), record=True)
    assert [r.job.index for r in reference] == list(range(11))
    assert len({r.steps for r in reference}) > 2  # episodes really end at different times
    for n in (2, 4, 8, 16):
        got, envs = rollout(n, jobs(11), record=True)
        assert [r.job.index for r in got] == list(range(11))  # job order, not finish order
        for a, b in zip(reference, got, strict=True):
            assert (a.episode_return, a.steps, a.success) == (b.episode_return, b.steps, b.success)
            np.testing.assert_array_equal(np.stack(a.actions), np.stack(b.actions))
            np.testing.assert_array_equal(
                [o["continuous_observations"] for o in a.observations],
                [o["continuous_observations"] for o in b.observations],
            )
            assert len(b.action_seconds) == b.steps and all(t >= 0 for t in b.action_seconds)


def test_max_steps_success_and_frames_per_env():
    frames = {}
    results, envs = rollout(
        3, jobs(5, max_steps=2), on_frame=lambda job, f: frames.setdefault(job.index, []).append(f)
    )
    assert all(r.steps == 2 for r in results)
    # A reset frame and one per step, kept apart per episode.
    assert sorted(frames) == list(range(5)) and all(len(v) == 3 for v in frames.values())
    assert sum(e.frames for e in envs) == 15
    assert all(r.success in (True, False) for r in results)  # the env reports success


def test_on_result_sees_every_episode_once_and_bad_jobs_fail():
    seen: list[EpisodeResult] = []
    rollout(2, jobs(4), on_result=seen.append)
    assert sorted(r.job.index for r in seen) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="for 'other.task'"):
        rollout(1, [RolloutJob("other.task", 0, 0)])
    with pytest.raises(ValueError, match="at least one environment"):
        run_rollouts([], PerEnvActor(lambda j, e: None), INFO, jobs(1))


class PerturbedPolicy(SeededPolicy):
    """Executes its action shifted by 0.5 (clipped) and records the unshifted one, as a
    noise-injected expert does."""

    def act(self, obs):
        self.recorded_action = super().act(obs)
        return np.clip(self.recorded_action + 0.5, -1.0, 1.0).astype(np.float32)


def test_recorded_actions_are_stored_while_the_env_runs_the_executed_ones():
    def run(policy):
        envs = [CountdownEnv() for _ in range(3)]
        actor = PerEnvActor(lambda job, env: policy(job.seed))
        return run_rollouts(envs, actor, INFO, jobs(7), record=True)

    plain, perturbed = run(SeededPolicy), run(PerturbedPolicy)
    for a, b in zip(plain, perturbed, strict=True):
        assert a.steps == b.steps  # CountdownEnv's length and observations ignore the action
        stored = np.stack(b.actions)[:, 0]
        np.testing.assert_array_equal(np.stack(a.actions)[:, 0], stored)  # the recorded ones
        # The reward is action * x for the action that ran: the shifted one.
        x = np.array([o["continuous_observations"][0] for o in b.observations], np.float64)
        executed = np.clip(stored + 0.5, -1.0, 1.0).astype(np.float32)
        np.testing.assert_allclose(b.rewards, executed * x, rtol=1e-5, atol=1e-6)
        assert not np.allclose(b.rewards, a.rewards)
    # Without `record` nothing is stored, and the returns still follow the executed action.
    envs = [CountdownEnv() for _ in range(2)]
    actor = PerEnvActor(lambda job, env: PerturbedPolicy(job.seed))
    unrecorded = run_rollouts(envs, actor, INFO, jobs(7))
    assert [r.actions for r in unrecorded] == [None] * 7
    assert [r.episode_return for r in unrecorded] == [r.episode_return for r in perturbed]
