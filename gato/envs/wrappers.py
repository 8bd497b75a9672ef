"""Wrappers shared by several families: observations as a dict of JAT columns, frame resizing.

Every wrapper inherits `gymnasium.utils.RecordConstructorArgs` (called with its constructor's
arguments before `Wrapper.__init__`), as Gymnasium's own wrappers do: a wrapper's `spec` then
records it in `EnvSpec.additional_wrappers` with those arguments, so `env.spec.make()` rebuilds
the env as `gato.envs.make_env` built it. Without it `spec.make()` raises, and so does
`gymnasium.utils.env_checker.check_env`'s close check. Recorded arguments are plain values
(a dtype by its name), so the spec also survives `EnvSpec.to_json`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs
from PIL import Image


class DictObservation(gym.ObservationWrapper, RecordConstructorArgs):
    """Wraps a single-array observation as `{key: array}` with a fixed dtype (JAT column layout)."""

    def __init__(self, env: gym.Env, key: str, dtype: str = "float32"):
        self.dtype = np.dtype(dtype)
        RecordConstructorArgs.__init__(self, key=key, dtype=self.dtype.name)
        gym.ObservationWrapper.__init__(self, env)
        self.key = key
        inner = env.observation_space
        if not isinstance(inner, gym.spaces.Box):
            raise TypeError(f"DictObservation needs a Box observation space, got {inner}")
        if self.dtype.kind == "f":
            box = gym.spaces.Box(-np.inf, np.inf, inner.shape, self.dtype)
        else:
            box = gym.spaces.Box(
                inner.low.astype(self.dtype), inner.high.astype(self.dtype), inner.shape, self.dtype
            )
        self.observation_space = gym.spaces.Dict({key: box})

    def observation(self, observation):
        return {self.key: np.asarray(observation, dtype=self.dtype)}


class ResizeFrame(gym.ObservationWrapper, RecordConstructorArgs):
    """Resizes an RGB frame to (height, width) with area averaging (PIL's BOX filter), which keeps
    thin objects such as Pong's ball visible where nearest-neighbour sampling would drop them."""

    def __init__(self, env: gym.Env, height: int, width: int):
        RecordConstructorArgs.__init__(self, height=int(height), width=int(width))
        gym.ObservationWrapper.__init__(self, env)
        self.size = (width, height)  # PIL orders (width, height)
        channels = env.observation_space.shape[-1]
        self.observation_space = gym.spaces.Box(0, 255, (height, width, channels), np.uint8)

    def observation(self, observation):
        return np.asarray(Image.fromarray(observation).resize(self.size, Image.BOX))


class IntAction(gym.ActionWrapper, RecordConstructorArgs):
    """Accepts numpy integers and 0-d arrays as actions (minigrid and ALE want Python ints)."""

    def __init__(self, env: gym.Env):
        RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)

    def action(self, action):
        return int(action)
