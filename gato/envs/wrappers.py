"""Wrappers shared by several families: observations as a dict of JAT columns, frame resizing."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from PIL import Image


class DictObservation(gym.ObservationWrapper):
    """Wraps a single-array observation as `{key: array}` with a fixed dtype (JAT column layout)."""

    def __init__(self, env: gym.Env, key: str, dtype=np.float32):
        super().__init__(env)
        self.key = key
        self.dtype = np.dtype(dtype)
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


class ResizeFrame(gym.ObservationWrapper):
    """Resizes an RGB frame to (height, width) with area averaging (PIL's BOX filter), which keeps
    thin objects such as Pong's ball visible where nearest-neighbour sampling would drop them."""

    def __init__(self, env: gym.Env, height: int, width: int):
        super().__init__(env)
        self.size = (width, height)  # PIL orders (width, height)
        channels = env.observation_space.shape[-1]
        self.observation_space = gym.spaces.Box(0, 255, (height, width, channels), np.uint8)

    def observation(self, observation):
        return np.asarray(Image.fromarray(observation).resize(self.size, Image.BOX))
