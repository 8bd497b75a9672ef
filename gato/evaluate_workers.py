"""Worker side of `python -m gato.evaluate`: one model per process, rollouts as jobs.

Workers are spawned (fork is unsafe with MuJoCo/OpenGL and torch thread pools). Each loads the
checkpoint once, keeps one env and one policy per task, and runs jobs of one rollout each. A
rollout's result depends only on its job (the env and the sampler are reseeded from the job's
seed, the policy is reset with the job's prompt), never on which worker ran it or what it ran
before, so evaluations are reproducible with any number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from dataclasses import dataclass, field
from typing import Any

_state: dict[str, Any] = {}


@dataclass
class RolloutJob:
    """One rollout: task, its index among the task's rollouts, seed and prompt."""

    task: str
    index: int
    seed: int
    max_steps: int | None
    prompt: Any  # a gato.jat.Episode (truncated to what the prompt uses) or None
    demo_index: int | None = None  # which demonstration, for the report


@dataclass
class PolicyOptions:
    """GatoPolicy options shared by every rollout of an evaluation."""

    context_tokens: int | None = None
    prompt_tokens: int | None = None
    greedy: bool = False
    temperature: float = 1.0
    use_cache: bool = True
    extra: dict = field(default_factory=dict)


def init_worker(checkpoint: str, device: str, threads: int, options: PolicyOptions) -> None:
    """Load the model once per process."""
    import torch

    from gato.checkpoint import load_model

    if threads:
        torch.set_num_threads(threads)
    if mp.parent_process() is not None:  # a worker: the parent handles Ctrl-C
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    model, _ = load_model(checkpoint, device=device)
    _state.update(model=model, device=device, options=options, envs={}, policies={})


def run_job(job: RolloutJob) -> dict:
    """Run one rollout in this process (after init_worker); returns a JSON-able summary."""
    from gato.deploy import run_episode
    from gato.envs import get_task, make_env
    from gato.policy import GatoPolicy

    if "model" not in _state:
        raise RuntimeError("run_job before init_worker")
    info = get_task(job.task)
    envs, policies, opts = _state["envs"], _state["policies"], _state["options"]
    if job.task not in envs:
        envs[job.task] = make_env(info.name, seed=job.seed)
        policies[job.task] = GatoPolicy(
            _state["model"],
            info,
            context_tokens=opts.context_tokens,
            prompt_tokens=opts.prompt_tokens,
            greedy=opts.greedy,
            temperature=opts.temperature,
            use_cache=opts.use_cache,
            seed=job.seed,
            device=_state["device"],
        )
    max_steps = job.max_steps or info.max_episode_steps
    result = run_episode(envs[job.task], policies[job.task], job.prompt, job.seed, max_steps)
    return {
        "task": info.name,
        "index": job.index,
        "seed": job.seed,
        "demo_index": job.demo_index,
        "return": result.episode_return,
        "steps": result.steps,
        "success": result.success,
        "median_action_ms": result.median_action_ms,
    }


def close() -> None:
    """Close this process's envs (the in-process path calls it; workers just exit)."""
    for env in _state.get("envs", {}).values():
        env.close()
    _state.clear()
