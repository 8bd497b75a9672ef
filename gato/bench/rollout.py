"""Batched acting: rollouts per second and per-env action latency of gato/rollout.py.

Rollouts: 50 rollouts of cartpole.balance (5 observation tokens + '|' + 1 action token per
step) and metaworld.reach (39 + 1 + 4) with the `small` and `79M` sizes (random weights: speed
does not depend on them), every rollout prompted with a synthetic demonstration that fills the
whole context, sampled at temperature 1. "one env per forward" steps one environment at a time
with a one-row policy, which is what acting did before batching; "batched" runs N environments
with one N-row policy, one forward per action token for all of them. Each rollout is capped at a
few steps (a full 1000-step cartpole episode of the 79M model at one env per forward is a
minute), so the times include each rollout's prompt prefill (a whole context) at full weight;
`rollouts/s` is measured at that cap, and `speedup` compares env steps per second.

Latency: the wall time of one act_batch call (every env gets its action) at N = 1, 8 and 32,
with a full context. At N = 1 a forward of the 79M model reads all its weights once per action
token; `weights_MB` and `bound_ms` (those bytes over the memory bandwidth measured here by a
large numpy copy, one thread) show how close a step is to that floor.

Timed with one torch thread (see gato/bench/policy.py for why).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from gato.bench.policy import one_thread, synthetic_episode
from gato.config import get_config
from gato.envs import get_task, make_env
from gato.model import Gato
from gato.policy import GatoPolicy
from gato.rollout import GatoActor, RolloutJob, run_rollouts

TASKS = ("cartpole.balance", "metaworld.reach")
ROLLOUTS = 50
BATCHED_ENVS = 16


def memory_bandwidth_gbs(mbytes: int = 512, repeats: int = 5) -> float:
    """GB/s of a large array copy (read + write), best of `repeats`, one thread."""
    src = np.ones(mbytes * 2**20 // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def weights_bytes(model: Gato) -> int:
    """Bytes of every weight a decoding forward reads (the tied table once, as the output layer)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _model(size: str) -> Gato:
    torch.manual_seed(0)
    return Gato(get_config(size)).eval()


def _demo(info, context: int):
    per_step = sum(leaf.size for leaf in info.obs_spec.values()) + 1 + info.action_spec.size
    return synthetic_episode(info, context // per_step + 2)


def time_rollouts(model, task: str, num_envs: int, steps: int, rollouts: int = ROLLOUTS) -> dict:
    """Wall time of `rollouts` prompted rollouts of `steps` steps over `num_envs` envs."""
    info = get_task(task)
    demo = _demo(info, model.config.block_size)
    envs = [make_env(task) for _ in range(num_envs)]
    jobs = [RolloutJob(task, i, 2_000_000 + i, steps, demo) for i in range(rollouts)]
    policy = GatoPolicy(model, info, num_envs=num_envs)
    start = time.perf_counter()
    results = run_rollouts(envs, GatoActor(policy), info, jobs)
    seconds = time.perf_counter() - start
    for env in envs:
        env.close()
    env_steps = sum(r.steps for r in results)
    return {
        "seconds": seconds,
        "env_steps/s": env_steps / seconds,
        "rollouts/s": rollouts / seconds,
    }


def time_latency(model, task: str, num_envs: int, actions: int) -> float:
    """Median ms of one act_batch call for num_envs envs, after a full-context prefill."""
    info = get_task(task)
    demo = _demo(info, model.config.block_size)
    policy = GatoPolicy(model, info, num_envs=num_envs, seed=0)
    policy.reset(demo)
    rng = np.random.default_rng(0)

    def observations():
        return {
            i: {
                k: rng.normal(size=leaf.shape).astype(np.float32)
                for k, leaf in info.obs_spec.items()
            }
            for i in range(num_envs)
        }

    policy.act_batch(observations())  # the prefill
    times = []
    for _ in range(actions):
        obs = observations()
        start = time.perf_counter()
        policy.act_batch(obs)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run(quick: bool = False) -> list[dict]:
    return one_thread(_run, quick)


def _run(quick: bool) -> list[dict]:
    rows = []
    bandwidth = memory_bandwidth_gbs()
    for size, steps in (("small", 20 if quick else 100), ("79M", 2 if quick else 8)):
        model = _model(size)
        for task in TASKS:
            single = time_rollouts(model, task, 1, steps)
            batched = time_rollouts(model, task, BATCHED_ENVS, steps)
            for name, m, n in (
                ("one env per forward", single, 1),
                ("batched", batched, BATCHED_ENVS),
            ):
                rows.append(
                    {
                        "benchmark": f"{size} {task}, {ROLLOUTS} rollouts x {steps} steps, {name}",
                        "envs": n,
                        "seconds": m["seconds"],
                        "env_steps/s": m["env_steps/s"],
                        "rollouts/s": m["rollouts/s"],
                        "speedup": m["env_steps/s"] / single["env_steps/s"],
                    }
                )
        mb = weights_bytes(model) / 1e6
        context = model.config.block_size
        for n in (1, 8) if quick else (1, 8, 32):
            ms = time_latency(model, "cartpole.balance", n, 5 if quick else 20)
            rows.append(
                {
                    "benchmark": f"{size} cartpole.balance latency, {context}-token context",
                    "envs": n,
                    "ms/act": ms,
                    "hz_per_env": 1000 / ms,
                    "weights_MB": mb,
                    "bandwidth_GB/s": bandwidth,
                    "bound_ms": mb / 1e3 / bandwidth * 1e3,
                }
            )
    return rows


if __name__ == "__main__":
    from gato.bench.__main__ import format_table

    print(format_table(run(quick=True)))
