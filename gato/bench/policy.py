"""Acting latency: median wall time per action of GatoPolicy with a full 1024-token context.

The `79M` model (random weights: latency does not depend on them) acts on cartpole.balance
(DM Control: 5 observation tokens + '|' + 1 action token per step) and metaworld.reach (39 + 1 +
4). The policy is first prompted with 1024 tokens of a synthetic demonstration, so every action
is taken with a full context window. "cached" feeds each new token through the KV cache (the
sliding memory); "recompute" runs the model over the whole context again for every action token
(use_cache=False). The paper runs its 1.18B model at 20 Hz on a robot; `reaches_20hz` says
whether an action takes at most 50 ms here.

Timed with one torch thread: on the shared 2-core machines this project runs on, two threads spin
against other processes and run several times slower (one decoding step is a chain of small,
memory-bound matrix-vector products). `prefill_ms` is the first action of an episode, which also
feeds the 1024 prompt tokens through the cache in one chunk.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from gato.config import get_config
from gato.envs import get_task
from gato.jat import Episode
from gato.layout_check import timestep_tokens
from gato.model import Gato
from gato.policy import GatoPolicy

TASKS = ("cartpole.balance", "metaworld.reach")
CONTEXT = 1024


def synthetic_episode(info, steps: int, seed: int = 0) -> Episode:
    """Random observations and actions in the task's layout (continuous tasks only)."""
    rng = np.random.default_rng(seed)
    obs = {
        key: rng.normal(size=(steps, *leaf.shape)).astype(np.float32)
        for key, leaf in info.obs_spec.items()
    }
    actions = rng.uniform(-1, 1, (steps, *info.action_spec.shape)).astype(np.float32)
    return Episode(info.name, obs, actions, np.zeros(steps, np.float32))


def time_actions(policy: GatoPolicy, observations: list, warmup: int) -> list[float]:
    """Seconds per act() for each observation after the first `warmup` ones."""
    times = []
    for i, obs in enumerate(observations):
        start = time.perf_counter()
        policy.act(obs)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def one_thread(fn, *args):
    """fn(*args) with one torch thread (see the module docstring), the setting restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(threads)


def run(quick: bool = False) -> list[dict]:
    return one_thread(_run, quick)


def _run(quick: bool) -> list[dict]:
    torch.manual_seed(0)
    model = Gato(get_config("79M", block_size=CONTEXT)).eval()
    rows = []
    for task in TASKS:
        info = get_task(task)
        per_step = timestep_tokens(info)
        demo = synthetic_episode(info, CONTEXT // per_step + 2)
        rng = np.random.default_rng(1)
        for use_cache in (True, False):
            # Recomputing is seconds per action: a few suffice (and it has no prefill to skip).
            repeats = (10 if quick else 40) if use_cache else (1 if quick else 2)
            warmup = 2 if use_cache else 1  # the first action (the prefill) included
            observations = [
                {k: rng.normal(size=leaf.shape).astype(np.float32)}
                for k, leaf in info.obs_spec.items()
                for _ in range(warmup + repeats)
            ]
            policy = GatoPolicy(
                model, info, context_tokens=CONTEXT, greedy=True, use_cache=use_cache, seed=0
            )
            policy.reset(demo)
            start = time.perf_counter()
            policy.act(observations[0])  # the prompt goes through the model with this one
            prefill = time.perf_counter() - start
            times = time_actions(policy, observations[1:], warmup - 1)
            ms = 1000 * statistics.median(times)
            rows.append(
                {
                    "benchmark": f"79M {task}, {'cached' if use_cache else 'recompute'}",
                    "tokens/action": info.action_spec.size,
                    "context_tokens": CONTEXT,
                    "actions_timed": len(times),
                    "ms/action": ms,
                    "hz": 1000 / ms,
                    "reaches_20hz": ms <= 50.0,
                    "prefill_ms": 1000 * prefill,
                    "threads": torch.get_num_threads(),
                }
            )
    return rows


if __name__ == "__main__":
    from gato.bench.__main__ import format_table

    print(format_table(run(quick=True)))
