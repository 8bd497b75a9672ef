"""Meta-World v3: the scripted policies shipped with metaworld (`metaworld.policies`).

Each policy reads the 39-d observation (hand, object and goal positions) and returns a 4-d
action in [-1, 1]; there is one per task, for all 50.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from gato.envs import CONTINUOUS_OBS, get_task


def has_expert(task: str) -> bool:
    from metaworld.policies import ENV_POLICY_MAP

    return task.startswith("metaworld.") and get_task(task).env_id in ENV_POLICY_MAP


class ScriptedPolicyExpert:
    """Wraps `metaworld.policies.ENV_POLICY_MAP[env_name]()`."""

    def __init__(self, env_id: str):
        from metaworld.policies import ENV_POLICY_MAP

        self.policy = ENV_POLICY_MAP[env_id]()

    def reset(self, env: gym.Env, observation: dict) -> None:
        pass  # the policies are stateless functions of the observation

    def act(self, observation: dict) -> np.ndarray:
        # The policies were written against float64 observations; float32 changes nothing
        # beyond the 7th digit of positions they threshold at millimetres.
        obs = np.asarray(observation[CONTINUOUS_OBS], np.float64)
        return np.clip(self.policy.get_action(obs), -1.0, 1.0).astype(np.float32)


def make_expert(task: str, env: gym.Env, **kwargs) -> ScriptedPolicyExpert:
    return ScriptedPolicyExpert(get_task(task).env_id)
