"""The JAT dataset's 157 control configs, each mapped to a registered task, with its status.

`jat-project/jat-dataset` has one config per task: Atari 57, BabyAI 39, Meta-World 50, MuJoCo 11.
Each maps to the registered task whose `TaskInfo.jat_name` it is. Its status says how far the env
here is the one the hub's episodes were recorded in (read from JAT's own code: jat/eval/rl/core.py
for env ids and wrappers, setup.py for package pins):

- `supported`: JAT's env id and observation/action layout, from newer package versions (named);
- `supported, env differs`: the layout matches, or is converted exactly on load, but the env here
  is a different version or has different settings (named), so returns are not comparable and a
  policy trained on hub data acts in a close relative of its env, not in it;
- `unsupported`: the layout cannot match; loading the config raises a one-line UserError naming
  the reason (`require_supported`). No JAT config is in this state with the installed packages.

`reference_env(task)` names the env and package versions of any registered task (item 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from gato.errors import UserError

SUPPORTED = "supported"
ENV_DIFFERS = "supported, env differs"
UNSUPPORTED = "unsupported"
STATUSES = (SUPPORTED, ENV_DIFFERS, UNSUPPORTED)
JAT_FAMILIES = {"atari": 57, "babyai": 39, "metaworld": 50, "mujoco": 11}

# The packages each family's envs come from here (first: the env's own package).
_PACKAGES = {
    "dmc": ("dm_control", "mujoco"),
    "metaworld": ("metaworld", "mujoco"),
    "babyai": ("minigrid", "gymnasium"),
    "atari": ("ale-py", "gymnasium"),
    "mujoco": ("gymnasium", "mujoco"),
}
# What JAT's setup.py installed for its evaluation envs (`EVAL_REQUIRE`, with gymnasium==0.29.1).
JAT_PACKAGES = {
    "atari": "gymnasium[atari] 0.29.1 (ale-py, version not pinned)",
    "babyai": "minigrid (version not pinned by JAT), gymnasium 0.29.1",
    "metaworld": "Meta-World v2 tasks (qgallouedec/Metaworld@gym2.6_register, mujoco-py<2.2)",
    "mujoco": "gymnasium[mujoco] 0.29.1 (mujoco, version not pinned)",
}
# What differs, family by family, between JAT's recording and the env here.
_NOTES = {
    "atari": (
        "JAT: 84x84 grey stacks of 4, converted on load to 80x80 RGB (newest frame)",
        "JAT: the game's minimal action set, mapped on load to the full 18-action ids",
        "JAT: no sticky actions, 30 no-op starts, max-pooled frameskip 4; here sticky 0.25",
    ),
    "babyai": ("same level ids; JAT did not pin minigrid, so levels may differ between releases",),
    "metaworld": (
        "JAT: v2 tasks on mujoco-py; here v3 on mujoco 3 (rewards and dynamics differ)",
        "JAT: 100-step episodes, goal hidden (last 3 observations 0), a new goal every reset;"
        " here 500 steps, goal visible, 50 fixed goal configurations",
    ),
    "mujoco": ("same env id; gymnasium and mujoco versions here are newer",),
}


@dataclass(frozen=True)
class JatConfig:
    """One config of the JAT dataset and the registered task it maps to."""

    config: str
    """The hub's config name, e.g. 'mujoco-ant'."""
    task: str
    """The registered task, e.g. 'mujoco.ant'."""
    jat_env: str
    """The env JAT recorded it in, e.g. 'Ant-v4'."""
    env: str
    """The env the task is built from here, e.g. 'Ant-v4'."""
    status: str
    """One of STATUSES."""
    notes: tuple[str, ...] = ()
    """What differs between JAT's recording and the env here."""


def _installed(package: str) -> str:
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return f"{package} (not installed)"


def reference_env(task: str) -> str:
    """The env a registered task is built from, with package versions: 'Ant-v4 (gymnasium 1.4.0,
    mujoco 3.3.0)'. Its data (collected here, or the hub's for a JAT config) was recorded in it."""
    from gato.envs import get_task

    info = get_task(task)
    packages = ", ".join(_installed(p) for p in _PACKAGES[info.family])
    return f"{info.env_id} ({packages})"


def _jat_env(info) -> str:
    # JAT's env ids, by family (jat/eval/rl/core.py TASK_NAME_TO_ENV_ID): Atari and BabyAI ids
    # are the ones used here; Meta-World's are the v2 tasks; MuJoCo's the v4 envs.
    from gato.envs import mujoco

    if info.family == "metaworld":
        return info.env_id.removesuffix("-v3") + "-v2"
    if info.family == "mujoco":
        return mujoco.jat_env_id(info.name.split(".", 1)[1])
    return info.env_id


def _config(info) -> JatConfig:
    from gato.envs import mujoco

    jat_env = _jat_env(info)
    notes = _NOTES[info.family]
    status = SUPPORTED if info.family in ("babyai", "mujoco") else ENV_DIFFERS
    robot = info.name.split(".", 1)[1]
    if info.family == "mujoco" and robot in mujoco.V4_REPLACED:
        status, notes = ENV_DIFFERS, (mujoco.V4_REPLACED[robot][1],)
    return JatConfig(info.jat_name, info.name, jat_env, info.env_id, status, notes)


@cache
def jat_configs() -> tuple[JatConfig, ...]:
    """Every JAT control config (157), sorted by config name."""
    from gato.envs import get_task, list_tasks

    configs = []
    for family in JAT_FAMILIES:
        for name in list_tasks(family):
            info = get_task(name)
            if info.jat_name is not None:
                configs.append(_config(info))
    return tuple(sorted(configs, key=lambda c: c.config))


def jat_config(config: str) -> JatConfig | None:
    """The JatConfig of a hub config name, or None if it is not one of JAT's control configs."""
    return {c.config: c for c in jat_configs()}.get(config)


def require_supported(config: str) -> None:
    """Raises a one-line UserError if `config` is a JAT config marked unsupported here."""
    entry = jat_config(config)
    if entry is not None and entry.status == UNSUPPORTED:
        reason = "; ".join(entry.notes)
        raise UserError(
            f"JAT config {config!r} is unsupported here: {reason} (see `python -m gato.envs --jat`)"
        )


def from_jat_actions(task_info, actions: np.ndarray) -> np.ndarray:
    """Hub actions of a registered task, in the env's action layout here.

    Atari: JAT's minimal-action-set indices become full-set ids (`atari.minimal_action_set`); an
    index outside the game's set is an error, never clipped. Other families: unchanged (the
    layouts are JAT's). A task that is not registered (a caller's own TaskInfo) keeps its actions.
    """
    from gato.envs import atari, list_tasks

    if task_info.family != "atari" or task_info.name not in list_tasks("atari"):
        return actions
    minimal = np.asarray(atari.minimal_action_set(task_info.name), np.int64)
    actions = np.asarray(actions, np.int64)
    bad = (actions < 0) | (actions >= len(minimal))
    if bad.any():
        raise ValueError(
            f"hub action {int(actions[bad][0])} of {task_info.name!r} is outside the game's "
            f"{len(minimal)} minimal actions"
        )
    return minimal[actions]


def jat_table(markdown: bool = False) -> str:
    """The table of every JAT config: task, JAT's env, the env here, status, what differs."""
    rows = [("JAT config", "task", "JAT env", "env here", "status")]
    rows += [(c.config, c.task, c.jat_env, c.env, c.status) for c in jat_configs()]
    counts = {s: sum(c.status == s for c in jat_configs()) for s in STATUSES}
    summary = f"{len(jat_configs())} JAT configs: " + ", ".join(
        f"{n} {s}" for s, n in counts.items()
    )
    lines = []
    if markdown:
        lines.append("| " + " | ".join(rows[0]) + " |")
        lines.append("|" + "---|" * len(rows[0]))
        lines += ["| " + " | ".join(f"`{v}`" for v in row) + " |" for row in rows[1:]]
    else:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += [
            "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
    lines += ["", summary, "", "What differs from JAT's recording, by family:"]
    for family, notes in _NOTES.items():
        lines.append(f"- {family}: recorded with {JAT_PACKAGES[family]}; here {_here(family)}.")
        lines += [f"  - {note}" for note in notes]
    from gato.envs import mujoco

    for robot, (env_id, why) in mujoco.V4_REPLACED.items():
        lines.append(f"  - mujoco.{robot}: {env_id}; {why}")
    return "\n".join(lines)


def _here(family: str) -> str:
    return ", ".join(_installed(p) for p in _PACKAGES[family])
