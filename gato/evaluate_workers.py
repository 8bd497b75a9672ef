"""Worker side of `python -m gato.evaluate`: one model per process, chunks of rollouts as jobs.

Workers are spawned (fork is unsafe with MuJoCo/OpenGL and torch thread pools). Each loads the
checkpoint once and keeps `num_envs` environments per task; a chunk (rollouts of one task) is run
by :func:`gato.rollout.run_rollouts` with one batched policy acting for all of those envs at
once. A rollout's result depends only on its job (the env is reset with the job's seed, the
policy row is restarted with the job's prompt and seed), never on which worker ran it, how many
envs acted beside it, or what ran before, so evaluations are reproducible with any number of
workers and envs.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from dataclasses import dataclass, field
from typing import Any

from gato.rollout import RolloutJob

_state: dict[str, Any] = {}


@dataclass
class PolicyOptions:
    """GatoPolicy options shared by every rollout of an evaluation."""

    context_tokens: int | None = None
    prompt_tokens: int | None = None
    greedy: bool = False
    temperature: float = 1.0
    use_cache: bool = True
    num_envs: int = 16
    bf16: bool = False
    memory: str | None = None
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    greedy_tasks: frozenset[str] = frozenset()
    extra: dict = field(default_factory=dict)

    def greedy_for(self, task: str, family: str) -> bool:
        """Whether `task`'s actions are the most likely valid token: all with `greedy`, else
        those named in `greedy_tasks` by canonical task or family name."""
        return self.greedy or task in self.greedy_tasks or family in self.greedy_tasks

    def for_task(self, task: str) -> tuple[int | None, int | None, str]:
        """(context_tokens, prompt_tokens, memory) of `task`'s policy. What was given wins; a
        task the checkpoint trained on packed windows (`windows`, from
        gato.checkpoint.trained_windows) then defaults to its training window: that many
        context tokens, its prompt budget, and window memory. Otherwise the policy's defaults."""
        if task not in self.windows:
            return self.context_tokens, self.prompt_tokens, self.memory or "sliding"
        window, budget = self.windows[task]
        prompt = budget if self.prompt_tokens is None else self.prompt_tokens
        return self.context_tokens or window, prompt, self.memory or "window"


def init_worker(checkpoint: str, device: str, threads: int, options: PolicyOptions) -> None:
    """Load the model once per process."""
    import torch

    from gato.checkpoint import load_model

    if threads:
        torch.set_num_threads(threads)
    if mp.parent_process() is not None:  # a worker: the parent handles Ctrl-C
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    model, _ = load_model(checkpoint, device=device)
    if options.bf16:
        model = model.to(torch.bfloat16)
    _state.update(model=model, device=device, options=options, envs={})


def run_chunk(jobs: list[RolloutJob]) -> list[dict]:
    """Run rollouts of one task in this process (after init_worker); JSON-able summaries in
    job order."""
    from gato.envs import get_task, make_env
    from gato.policy import GatoPolicy
    from gato.rollout import GatoActor, run_rollouts

    if "model" not in _state:
        raise RuntimeError("run_chunk before init_worker")
    if not jobs:
        return []
    info = get_task(jobs[0].task)
    opts = _state["options"]
    n = min(opts.num_envs, len(jobs))
    envs = _state["envs"].setdefault(info.name, [])
    while len(envs) < n:  # envs are reused across chunks: reset(seed=) is pure
        envs.append(make_env(info.name, seed=jobs[0].seed))
    context, prompt, memory = opts.for_task(info.name)
    policy = GatoPolicy(
        _state["model"],
        info,
        context_tokens=context,
        prompt_tokens=prompt,
        greedy=opts.greedy_for(info.name, info.family),
        temperature=opts.temperature,
        use_cache=opts.use_cache,
        device=_state["device"],
        num_envs=n,
        memory=memory,
    )
    results = run_rollouts(envs[:n], GatoActor(policy), info, jobs)
    return [r.summary() for r in results]


def close() -> None:
    """Close this process's envs (the in-process path calls it; workers just exit)."""
    for envs in _state.get("envs", {}).values():
        for env in envs:
            env.close()
    _state.clear()
