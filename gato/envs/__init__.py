"""The task registry: every environment Gato is trained and evaluated on, behind one interface.

    >>> from gato.envs import get_task, list_tasks, make_env
    >>> info = get_task("cartpole.swingup")          # or a JAT alias: get_task("atari-pong")
    >>> env = make_env("cartpole.swingup", seed=0)
    >>> observation, info = env.reset(seed=0)       # {'continuous_observations': float32 (5,)}

Observations are dicts keyed by the JAT dataset's column names (`continuous_observations`,
`discrete_observations`, `text_observations`, `image_observations`), one leaf per modality, so a
stored episode maps 1:1 to observations and `TaskInfo.obs_spec` tokenizes them. Families and their
conventions are documented in their modules: dmc, metaworld, babyai, atari, mujoco.
"""

from __future__ import annotations

import difflib
import importlib
import os
from functools import cache

import gymnasium as gym

from gato.envs.task import CONTINUOUS_OBS, DISCRETE_OBS, IMAGE_OBS, TEXT_OBS, TaskInfo

__all__ = [
    "CONTINUOUS_OBS",
    "DISCRETE_OBS",
    "FAMILIES",
    "IMAGE_OBS",
    "TEXT_OBS",
    "TaskInfo",
    "get_task",
    "list_tasks",
    "make_env",
]

# Without a display MuJoCo (dm_control, Meta-World, Gymnasium MuJoCo) can only render headless;
# EGL works on CPU-only machines here. Set before any of them is imported; an explicit setting wins.
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

FAMILIES = ("dmc", "metaworld", "babyai", "atari", "mujoco")


def _family_module(family: str):
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    return importlib.import_module(f"gato.envs.{family}")


@cache
def _family_names(family: str) -> tuple[str, ...]:
    return tuple(_family_module(family).task_names())


def _family_of(name: str) -> str:
    prefix = name.split(".", 1)[0]
    return prefix if prefix in FAMILIES and prefix != "dmc" else "dmc"


def list_tasks(family: str | None = None) -> list[str]:
    """Canonical task names, sorted, of one family or of all."""
    families = FAMILIES if family is None else (family,)
    return [name for fam in families for name in _family_names(fam)]


@cache
def _jat_aliases() -> dict[str, str]:
    # JAT names are derived from the canonical name without building any env (except BabyAI's
    # step-limit bound), so resolving aliases only needs the cheap per-family rules.
    aliases = {}
    for name in list_tasks("metaworld"):
        aliases["metaworld-" + name.split(".", 1)[1]] = name
    for name in list_tasks("atari"):
        aliases["atari-" + name.split(".", 1)[1]] = name
    from gato.envs import babyai, mujoco

    for name in list_tasks("babyai"):
        jat_name = babyai._jat_name(name.split(".", 1)[1])
        if jat_name:
            aliases[jat_name] = name
    for robot, entry in mujoco._ROBOTS.items():
        aliases[entry[0]] = f"mujoco.{robot}"  # the JAT (v4) layout, not mujoco.<robot>-v5
    return aliases


def canonical_name(name: str) -> str:
    """The canonical name of a task given by canonical name or JAT alias; ValueError if unknown."""
    if not isinstance(name, str):
        raise ValueError(f"a task name must be a str, got {type(name).__name__}")
    family = _family_of(name)
    if name in _family_names(family):
        return name
    aliases = _jat_aliases()
    if name in aliases:
        return aliases[name]
    known = list_tasks() + sorted(aliases)
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `python -m gato.envs --list`"
    raise ValueError(f"unknown task {name!r}{hint}")


@cache
def _task_info(name: str) -> TaskInfo:
    return _family_module(_family_of(name)).task_info(name)


def get_task(name: str) -> TaskInfo:
    """The TaskInfo of a task, by canonical name ('metaworld.assembly') or JAT alias."""
    return _task_info(canonical_name(name))


def make_env(task: str, seed: int | None = None, **kwargs) -> gym.Env:
    """Builds the task's env: dict observations matching `get_task(task).obs_spec`.

    Episodes are chosen by `env.reset(seed=s)` alone: for every family, a reused env (whatever
    it was made with and whatever episodes it ran before) gives exactly the episode a fresh env
    gives for the same `s` (tests/test_envs.py), so evaluation and collection may reuse envs.
    `seed` only seeds the action space and, in some families, resets given no seed. Keyword
    arguments go to the family's builder (`render_mode='rgb_array'` works for every family;
    Atari also takes `image_size`, `max_episode_steps`).
    """
    info = get_task(task)
    return _family_module(info.family).make(info, seed=seed, **kwargs)
