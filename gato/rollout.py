"""The one episode loop: N environments of one task stepped together by a batched actor.

Deployment, evaluation, fine-tuning's evaluations and data collection all roll out through
:func:`run_rollouts`:

    envs = [make_env(info.name) for _ in range(8)]
    actor = GatoActor(GatoPolicy(model, info, num_envs=8))
    results = run_rollouts(envs, actor, info, jobs)   # one EpisodeResult per job, in job order

A job is one episode: its seed and prompt. Each environment takes the next job when its episode
ends (reset with that job's seed, the actor's row restarted with its prompt and seed) and retires
when none is left, without disturbing the others. An episode depends only on its job: the env's
reset is a pure function of the seed, and each actor row is restarted from the job (its prompt
and its own sampling seed), so results do not depend on the number of environments or on the
order in which they finish.

An actor acts for every running environment at once (one forward per action token for a Gato
policy); :class:`PerEnvActor` adapts a per-environment policy such as a scripted expert.

With `record`, an episode stores the action that ran, unless the actor has a
``recorded_actions() -> {env_index: action}`` for the step just taken: then that action is stored
for those environments instead (noise-injected collection executes a perturbed action and records
the expert's, gato/experts/noise.py). Rewards and the next observation always follow the action
that ran.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# How a policy's row remembers its past: a sliding KV-cache memory, or a fresh window per
# forward (gato/policy.py's docstring). Here so that CLIs list them without importing torch.
MEMORIES = ("sliding", "window")


@dataclass
class RolloutJob:
    """One episode to roll out: its task, its index among the task's episodes, seed and prompt."""

    task: str
    index: int
    seed: int
    max_steps: int | None = None  # default: the task's episode limit
    prompt: Any = None  # a gato.jat.Episode (or loaded prompt) to condition on, or None
    demo_index: int | None = None  # which demonstration the prompt is, for reports


@dataclass
class EpisodeResult:
    """What one rollout did; with `record`, also what it saw and did at every step."""

    job: RolloutJob
    episode_return: float = 0.0
    steps: int = 0
    success: bool | None = None
    action_seconds: list[float] = field(default_factory=list)  # wall time of each act() call
    observations: list[Mapping] | None = None  # obs_t, before action_t (record=True)
    actions: list | None = None
    rewards: list[float] | None = None

    @property
    def median_action_ms(self) -> float:
        return 1000.0 * statistics.median(self.action_seconds) if self.action_seconds else 0.0

    def summary(self) -> dict:
        """A JSON-able row for reports."""
        return {
            "task": self.job.task,
            "index": self.job.index,
            "seed": self.job.seed,
            "demo_index": self.job.demo_index,
            "return": self.episode_return,
            "steps": self.steps,
            "success": self.success,
            "median_action_ms": self.median_action_ms,
        }


class BatchActor(Protocol):
    """What run_rollouts drives: rows keyed by environment index."""

    def start(self, index: int, env, observation, job: RolloutJob) -> None: ...

    def act(self, observations: Mapping[int, Any]) -> Mapping[int, Any]: ...

    def stop(self, index: int) -> None: ...


class GatoActor:
    """A batched :class:`gato.policy.GatoPolicy` (num_envs rows) as a BatchActor; rows join
    the batch as their environment starts an episode."""

    def __init__(self, policy):
        self.policy = policy
        for index in policy.active:  # a new policy starts every row: run_rollouts starts its own
            policy.stop(index)

    def start(self, index, env, observation, job):
        self.policy.start(index, job.prompt, seed=job.seed)

    def act(self, observations):
        return self.policy.act_batch(observations)

    def stop(self, index):
        self.policy.stop(index)


class PerEnvActor:
    """Per-environment policies as a BatchActor: `make(job, env)` builds a fresh policy per
    episode (seeded by the job), which gets ``reset(env, obs)`` and ``act(obs)`` calls."""

    def __init__(self, make: Callable[[RolloutJob, Any], Any]):
        self.make = make
        self.policies: dict[int, Any] = {}
        self.acted: list[int] = []  # the environments of the last act() call

    def start(self, index, env, observation, job):
        policy = self.make(job, env)
        policy.reset(env, observation)
        self.policies[index] = policy

    def act(self, observations):
        self.acted = list(observations)
        return {i: self.policies[i].act(obs) for i, obs in observations.items()}

    def recorded_actions(self):
        """The actions to store for the step just taken: a policy's ``recorded_action`` where it
        has one (the expert's action under a perturbed execution), else none."""
        return {
            i: self.policies[i].recorded_action
            for i in self.acted
            if getattr(self.policies[i], "recorded_action", None) is not None
        }

    def stop(self, index):
        del self.policies[index]


@dataclass
class _Running:
    result: EpisodeResult
    observation: Any
    max_steps: int
    position: int  # the job's place in the job list
    saw_success: bool = False


def run_rollouts(
    envs: Sequence,
    actor: BatchActor,
    task_info,
    jobs: Iterable[RolloutJob],
    record: bool = False,
    on_frame: Callable[[RolloutJob, np.ndarray], None] | None = None,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Roll every job out over `envs` (all of task_info's task); results in job order.

    Success follows the data collector: Meta-World's info['success'] (or 'is_success'),
    BabyAI's positive return; None where the task has no notion of it. `on_frame(job, frame)`
    receives env.render() after each reset and step (envs made with render_mode='rgb_array');
    `on_result` each finished episode as it finishes."""
    if not envs:
        raise ValueError("run_rollouts needs at least one environment")
    pending = enumerate(jobs)
    discrete = not hasattr(task_info.action_spec, "low")
    recorded_actions = getattr(actor, "recorded_actions", None) if record else None
    running: dict[int, _Running] = {}
    done: list[tuple[int, EpisodeResult]] = []

    def begin(i: int) -> bool:
        drawn = next(pending, None)
        if drawn is None:
            return False
        position, job = drawn
        if job.task != task_info.name:
            raise ValueError(
                f"job {job.index} is for {job.task!r}, the envs run {task_info.name!r}"
            )
        obs, _ = envs[i].reset(seed=job.seed)
        actor.start(i, envs[i], obs, job)
        result = EpisodeResult(job)
        if record:
            result.observations, result.actions, result.rewards = [], [], []
        running[i] = _Running(result, obs, job.max_steps or task_info.max_episode_steps, position)
        if on_frame is not None:
            on_frame(job, envs[i].render())
        return True

    def finish(i: int) -> None:
        run = running.pop(i)
        r = run.result
        if task_info.family == "babyai":  # BabyAI rewards only a completed mission
            r.success = r.episode_return > 0
        elif not run.saw_success:
            r.success = None
        done.append((run.position, r))
        if on_result is not None:
            on_result(r)
        if begin(i):
            return
        actor.stop(i)

    for i in range(len(envs)):
        if not begin(i):
            break
    while running:
        start = time.perf_counter()
        actions = actor.act({i: run.observation for i, run in running.items()})
        seconds = time.perf_counter() - start
        stored = recorded_actions() if recorded_actions is not None else {}
        for i in list(running):
            run = running[i]
            r = run.result
            action = _env_action(actions[i], discrete)
            if record:
                r.observations.append(run.observation)
                r.actions.append(_env_action(stored[i], discrete) if i in stored else action)
            obs, reward, terminated, truncated, info = envs[i].step(action)
            r.episode_return += float(reward)
            r.steps += 1
            r.action_seconds.append(seconds)
            if record:
                r.rewards.append(float(reward))
            for key in ("success", "is_success"):
                if key in info:
                    run.saw_success = True
                    r.success = bool(r.success) or bool(info[key])
            run.observation = obs
            if on_frame is not None:
                on_frame(r.job, envs[i].render())
            if terminated or truncated or r.steps >= run.max_steps:
                finish(i)
    return [r for _, r in sorted(done, key=lambda item: item[0])]


def _env_action(action, discrete: bool):
    """What env.step takes: an int for a single discrete value, else a typed array."""
    if discrete and np.size(action) == 1:
        return int(np.asarray(action).reshape(-1)[0])
    return np.asarray(action, np.int64 if discrete else np.float32)
