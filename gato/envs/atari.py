"""Atari 2600 games (ale-py, ROMs bundled), as Gymnasium envs with dict observations.

Settings (ALE v5, as in Machado et al. 2018): frameskip 4, sticky actions with probability 0.25,
and the full 18-action set for every game, so one action space serves all games as in Gato.
Observation: `image_observations`, the RGB frame (210x160) resized to 80x80 (configurable with
`image_size=(h, w)`, multiples of 16) by area averaging; no frame stacking (the transformer sees
the history). Episodes are capped at 27,000 agent steps (108,000 frames, the standard 30 minutes),
configurable with `max_episode_steps=`; losing a life does not end the episode.

The registry holds the 57 games of the Atari benchmark (those JAT has); names are JAT's
lower-case game names: 'atari.pong', 'atari.spaceinvaders', 'atari.montezumarevenge'.
"""

from __future__ import annotations

from functools import cache

import gymnasium as gym
import numpy as np

from gato.envs.task import IMAGE_OBS, TaskInfo
from gato.envs.wrappers import DictObservation, IntAction, ResizeFrame
from gato.specs import DiscreteSpec, ImageSpec

FAMILY = "atari"
EPISODE_STEPS = 27_000
FRAMESKIP = 4
STICKY_ACTION_PROBABILITY = 0.25
NUM_ACTIONS = 18
IMAGE_SIZE = (80, 80)

# ALE game ids of the 57-game benchmark.
GAMES = (
    "Alien Amidar Assault Asterix Asteroids Atlantis BankHeist BattleZone BeamRider Berzerk "
    "Bowling Boxing Breakout Centipede ChopperCommand CrazyClimber Defender DemonAttack DoubleDunk "
    "Enduro FishingDerby Freeway Frostbite Gopher Gravitar Hero IceHockey Jamesbond Kangaroo Krull "
    "KungFuMaster MontezumaRevenge MsPacman NameThisGame Phoenix Pitfall Pong PrivateEye Qbert "
    "Riverraid RoadRunner Robotank Seaquest Skiing Solaris SpaceInvaders StarGunner Surround "
    "Tennis TimePilot Tutankham UpNDown Venture VideoPinball WizardOfWor YarsRevenge Zaxxon"
).split()
_BY_NAME = {f"{FAMILY}.{game.lower()}": game for game in GAMES}


def task_names() -> list[str]:
    return sorted(_BY_NAME)


def task_info(name: str) -> TaskInfo:
    game = _BY_NAME[name]
    return TaskInfo(
        name=name,
        family=FAMILY,
        jat_name=f"atari-{game.lower()}",
        obs_spec={IMAGE_OBS: ImageSpec(*IMAGE_SIZE, 3)},
        action_spec=DiscreteSpec((), NUM_ACTIONS),
        max_episode_steps=EPISODE_STEPS,
        env_id=f"ALE/{game}-v5",
    )


def make(
    info: TaskInfo,
    seed: int | None = None,
    render_mode: str | None = None,
    image_size: tuple[int, int] = IMAGE_SIZE,
    max_episode_steps: int = EPISODE_STEPS,
    **kwargs,
) -> gym.Env:
    import ale_py

    gym.register_envs(ale_py)
    height, width = image_size
    ImageSpec(height, width, 3)  # validates: multiples of 16
    env = gym.make(
        info.env_id,
        frameskip=FRAMESKIP,
        repeat_action_probability=STICKY_ACTION_PROBABILITY,
        full_action_space=True,
        max_num_frames_per_episode=max_episode_steps * FRAMESKIP,
        max_episode_steps=max_episode_steps,
        render_mode=render_mode,
        disable_env_checker=True,
        **kwargs,
    )
    env = ResizeFrame(env, height, width)
    env = DictObservation(env, IMAGE_OBS, np.uint8)
    env = IntAction(env)
    if seed is not None:
        env.action_space.seed(seed)
    return env


@cache
def minimal_action_set(name: str) -> tuple[int, ...]:
    """The game's minimal action set, as ids of the full 18-action set this registry uses.

    JAT recorded Atari with ALE's default minimal action set (jat/eval/rl/core.py `make_atari`
    does not ask for the full set, and its policy reads `logits[:action_space.n]`), so a hub
    action `i` of a game is this tuple's `i`-th entry here: Pong's 6 actions are full-set ids
    (0, 1, 3, 4, 11, 12), NOOP FIRE RIGHT LEFT RIGHTFIRE LEFTFIRE.
    """
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(task_info(name).env_id, full_action_space=False, disable_env_checker=True)
    try:
        return tuple(action.value for action in env.unwrapped.ale.getMinimalActionSet())
    finally:
        env.close()
