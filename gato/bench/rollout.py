"""Batched acting: rollouts per second and per-env action latency of gato/rollout.py.

Rollouts, 50 per row, random weights (speed does not depend on them), sampled at temperature 1,
of cartpole.balance (5 observation tokens + '|' + 1 action token per step) and metaworld.reach
(39 + 1 + 4), in two memories:
- sliding, `small` and `79M`: every rollout prompted with a synthetic demonstration that fills
  the whole 1024-token context; rollouts capped at a few steps (a full 1000-step cartpole
  episode of the 79M model at one env per forward is a minute), so each row includes every
  rollout's prompt prefill (a whole context) at full weight;
- window, `small`: the CPU proof's recipe (experiments/presets/cpu-proof.json), a window and a
  prompt of one timestep each, 200 steps per rollout; "from scratch" is the uncached window
  path (prompt and window read again at every action token, as acting did before window
  memory used the cache).
"one env per forward" steps one environment at a time with a one-row policy, which is what
acting did before batching; "batched" runs N environments with one N-row policy, one forward
per action token for all of them. `speedup` compares env steps per second with the row's
one-env baseline; env stepping and env construction are included, as in an evaluation.

Latency: the wall time of one act_batch call (every env gets its action) at N = 1, 8 and 32,
with a full 1024-token context (sliding memory), float32, plus the 79M model in bfloat16 at
N = 1 (`--bf16` in deploy and evaluate). A decoding forward reads the decoder's weights and the
1,024 rows of the tied table that score continuous actions (`weights_MB`), and every env's KV
cache (`kv_MB_per_env`); `bound_ms` is those bytes over the memory bandwidth measured here by a
large numpy copy (one thread): the floor of one act_batch call.

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
from gato.layout_check import timestep_tokens
from gato.model import Gato
from gato.policy import GatoPolicy
from gato.rollout import GatoActor, RolloutJob, run_rollouts
from gato.tokenizer import NUM_BINS

TASKS = ("cartpole.balance", "metaworld.reach")
ROLLOUTS = 50
BATCHED_ENVS = 16
WINDOW_ENVS = 25  # 50 rollouts over an evaluation's 2 workers: each runs its 25 at once
WINDOW_STEPS = 200


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


def weights_bytes(model: Gato, vocab_rows: int = NUM_BINS) -> int:
    """Bytes of the weights a decoding forward of a vector-observation task reads: the decoder
    blocks and final norm, and the `vocab_rows` rows of the tied table that score actions (the
    input lookups read a handful of rows; the patch encoder is idle without images)."""
    decoder = [*model.blocks.parameters(), *model.ln_f.parameters()]
    table = model.embed.wte.weight
    return sum(p.numel() * p.element_size() for p in decoder) + (
        vocab_rows * table.shape[1] * table.element_size()
    )


def kv_bytes_per_env(model: Gato, context: int) -> int:
    """Bytes of keys and values one env's query reads over a full context, every layer."""
    cfg = model.config
    element = model.embed.wte.weight.element_size()
    return cfg.n_layer * 2 * context * cfg.attn_dim * element


def _model(size: str) -> Gato:
    torch.manual_seed(0)
    return Gato(get_config(size)).eval()


def _demo(info, context: int):
    return synthetic_episode(info, context // timestep_tokens(info) + 2)


def time_rollouts(
    model,
    task: str,
    num_envs: int,
    steps: int,
    rollouts: int = ROLLOUTS,
    memory: str = "sliding",
    use_cache: bool = True,
) -> dict:
    """Wall time of `rollouts` prompted rollouts of `steps` steps over `num_envs` envs. Sliding
    memory: the model's whole context, a prompt as long; window memory: the CPU proof's recipe,
    a window and a prompt of one timestep each."""
    info = get_task(task)
    context = model.config.block_size if memory == "sliding" else timestep_tokens(info)
    demo = _demo(info, context)
    envs = [make_env(task) for _ in range(num_envs)]
    jobs = [RolloutJob(task, i, 2_000_000 + i, steps, demo) for i in range(rollouts)]
    policy = GatoPolicy(model, info, context, num_envs=num_envs, memory=memory, use_cache=use_cache)
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


def _rollout_row(size, task, steps, name, n, m, base, memory="sliding") -> dict:
    return {
        "benchmark": f"{size} {task}, {memory}, {ROLLOUTS} rollouts x {steps} steps, {name}",
        "envs": n,
        "seconds": m["seconds"],
        "env_steps/s": m["env_steps/s"],
        "rollouts/s": m["rollouts/s"],
        "speedup": m["env_steps/s"] / base["env_steps/s"],
    }


def _run(quick: bool) -> list[dict]:
    rows = []
    bandwidth = memory_bandwidth_gbs()
    for size, steps in (("small", 20 if quick else 100), ("79M", 2 if quick else 8)):
        model = _model(size)
        for task in TASKS:
            single = time_rollouts(model, task, 1, steps)
            batched = time_rollouts(model, task, BATCHED_ENVS, steps)
            rows.append(_rollout_row(size, task, steps, "one env per forward", 1, single, single))
            rows.append(_rollout_row(size, task, steps, "batched", BATCHED_ENVS, batched, single))
        if size == "small":  # the CPU proof's recipe
            steps = 20 if quick else WINDOW_STEPS
            for task in TASKS:
                runs = {
                    "one env per forward": (
                        1,
                        time_rollouts(model, task, 1, steps, memory="window"),
                    ),
                    "batched, from scratch": (
                        WINDOW_ENVS,
                        time_rollouts(
                            model, task, WINDOW_ENVS, steps, memory="window", use_cache=False
                        ),
                    ),
                    "batched": (
                        WINDOW_ENVS,
                        time_rollouts(model, task, WINDOW_ENVS, steps, memory="window"),
                    ),
                }
                base = runs["one env per forward"][1]
                for name, (n, m) in runs.items():
                    rows.append(_rollout_row(size, task, steps, name, n, m, base, "window"))
        context = model.config.block_size
        variants = [(n, torch.float32) for n in ((1, 8) if quick else (1, 8, 32))]
        if size == "79M":
            variants.append((1, torch.bfloat16))
        for n, dtype in variants:
            model = model.to(dtype)
            ms = time_latency(model, "cartpole.balance", n, 5 if quick else 20)
            weights, kv = weights_bytes(model), kv_bytes_per_env(model, context)
            rows.append(
                {
                    "benchmark": f"{size} cartpole.balance latency, {context}-token context, "
                    f"{str(dtype).removeprefix('torch.')}",
                    "envs": n,
                    "ms/act": ms,
                    "ms_per_env": ms / n,
                    "hz_per_env": 1000 / ms,
                    "weights_MB": weights / 1e6,
                    "kv_MB_per_env": kv / 1e6,
                    "bandwidth_GB/s": bandwidth,
                    "bound_ms": (weights + n * kv) / 1e6 / bandwidth,
                }
            )
    return rows


if __name__ == "__main__":
    from gato.bench.__main__ import format_table

    print(format_table(run(quick=True)))
