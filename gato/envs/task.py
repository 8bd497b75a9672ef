"""The description of one task: its name, family, observation and action specs, episode limit."""

from __future__ import annotations

from dataclasses import dataclass

from gato.specs import ContinuousSpec, DiscreteSpec

# Observation keys: the JAT dataset's column names, so a stored episode maps 1:1 to observations.
CONTINUOUS_OBS = "continuous_observations"
DISCRETE_OBS = "discrete_observations"
TEXT_OBS = "text_observations"
IMAGE_OBS = "image_observations"


@dataclass(frozen=True)
class TaskInfo:
    """Everything a data collector, tokenizer or evaluator needs to know about a task."""

    name: str
    """Canonical name: 'domain.task' for DM Control (cartpole.swingup), else 'family.task'."""
    family: str
    """'dmc' | 'metaworld' | 'babyai' | 'atari' | 'mujoco'."""
    jat_name: str | None
    """The JAT dataset's config name for this task (e.g. 'metaworld-assembly'), None if absent."""
    obs_spec: dict
    """gato.specs observation spec keyed by JAT column names (see the module constants)."""
    action_spec: ContinuousSpec | DiscreteSpec
    """What `env.step` accepts: float32 array of the shape (continuous) or an int (discrete)."""
    max_episode_steps: int
    """Agent steps after which an episode is truncated."""
    obs_components: tuple[tuple[str, int], ...] = ()
    """For concatenated continuous observations: (source name, size) in concatenation order."""
    env_id: str = ""
    """The upstream identifier the env is built from (e.g. 'ALE/Pong-v5', 'assembly-v3')."""
