"""Worker side of `python -m gato.collect`: roll out episodes and write them as shards.

A :class:`Job` is a chunk of episode indices; a worker process (spawned: fork is unsafe with
MuJoCo/OpenGL state) builds one env per task, a fresh policy per episode seeded by the episode,
rolls the episodes out and writes them as one shard (atomically, see gato/jat.py). Because the
policy and the env's reset depend only on the episode's seed (gato/envs guarantees that a reused
env replays a fresh env's episode), results do not depend on which worker ran which episode.
With noise (a job's ``sigma``/``epsilon``), collected episodes' experts are wrapped in
:class:`gato.experts.noise.NoisyExpert`, seeded by the episode's seed: the perturbed action runs
and the expert's is stored.
Workers die with the collecting process (gato/procs.py).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from gato.jat import IMAGE_OBS, TEXT_OBS, Episode, shard_paths, write_shard
from gato.procs import worker_pool
from gato.shards import quarantine, read_table, shard_rows, verify_shard

# Test hooks (fault injection): die by SIGKILL right before collecting this episode index, or
# between writing the temporary shard that holds it and renaming it.
CRASH_AT_EPISODE_ENV = "GATO_COLLECT_CRASH_AT_EPISODE"
CRASH_IN_WRITE_ENV = "GATO_COLLECT_CRASH_IN_WRITE"
KILL_MID_WRITE_ENV = "GATO_COLLECT_KILL_MID_WRITE"
"""Test hook: SIGKILL the process writing the shard holding this episode index, in the middle of
pyarrow's writing of the parquet file (gato.jat.write_shard), in a worker or the main process."""


# --------------------------------------------------------------------------- one episode


def default_env_fn(task: str, seed: int | None):
    from gato.envs import make_env

    return make_env(task, seed=seed)


def default_policy_fn(kind: str, task: str, env, seed: int):
    from gato.experts import make_expert, make_random_policy

    return make_expert(task, env) if kind == "expert" else make_random_policy(task, env, seed)


def run_episode(env, policy, task_info, seed: int, max_steps: int) -> Episode:
    """Roll out one episode from ``env.reset(seed=seed)`` through the one episode loop
    (gato/rollout.py); store (obs_t, action_t, reward_t)."""
    from gato.rollout import PerEnvActor, RolloutJob, run_rollouts

    job = RolloutJob(task_info.name, 0, seed, max_steps)
    actor = PerEnvActor(lambda job, env: policy)
    (result,) = run_rollouts([env], actor, task_info, [job], record=True)
    return episode_from_result(result, task_info)


def episode_from_result(result, task_info) -> Episode:
    """A recorded :class:`gato.rollout.EpisodeResult` as an Episode in the JAT schema."""
    steps = result.observations
    observations = {
        k: [o[k] for o in steps] if k == TEXT_OBS else np.stack([o[k] for o in steps])
        for k in task_info.obs_spec
    }
    if IMAGE_OBS in observations:
        observations[IMAGE_OBS] = observations[IMAGE_OBS].astype(np.uint8)
    return Episode(
        task=task_info.name,
        observations=observations,
        actions=np.stack(result.actions),
        rewards=np.asarray(result.rewards, np.float32),
        seed=result.job.seed,
        success=result.success,
    )


# ------------------------------------------------------------------------------ workers

_progress_queue = None
_envs: dict[tuple, Any] = {}


def _init_worker(queue) -> None:
    global _progress_queue
    _progress_queue = queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the parent


def _maybe_crash(var: str, indices: Sequence[int]) -> None:
    value = os.environ.get(var)
    if value is not None and int(value) in indices:
        if mp.parent_process() is None:
            raise RuntimeError(f"{var}={value}: injected failure")
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Job:
    """A chunk of episodes for one worker: collected ones are written as one shard."""

    kind: str  # 'collect' | 'random'
    task_info: Any
    indices: list[int]
    seeds: list[int]
    policy: str
    max_steps: int
    folder: str
    env_fn: Callable = default_env_fn
    policy_fn: Callable = default_policy_fn
    sigma: float = 0.0  # DART noise of collected episodes (gato/experts/noise.py)
    epsilon: float = 0.0


def make_policy(job: Job, env, seed: int):
    """A fresh policy for one episode, seeded by the episode; noise-wrapped where the job says."""
    policy = job.policy_fn(job.policy, job.task_info.name, env, seed)
    if job.kind == "collect" and (job.sigma or job.epsilon):
        from gato.experts.noise import NoisyExpert

        policy = NoisyExpert(policy, job.task_info.action_spec, seed, job.sigma, job.epsilon)
    return policy


def run_job(job: Job, report: Callable[[int], None] | None = None) -> list[dict]:
    """Run a job's episodes; returns their summaries (and writes the shard for 'collect')."""
    report = report or (lambda n: _progress_queue.put(n) if _progress_queue else None)
    name = job.task_info.name
    key = (name, job.env_fn)
    if key not in _envs:  # one env per worker process and task, reseeded on every reset
        _envs[key] = job.env_fn(name, job.seeds[0])
    env = _envs[key]
    episodes, out = [], []
    for index, seed in zip(job.indices, job.seeds, strict=True):
        if job.kind == "collect":
            _maybe_crash(CRASH_AT_EPISODE_ENV, [index])
        # A fresh policy per episode, seeded by the episode: results do not depend on which
        # worker ran which episodes before.
        policy = make_policy(job, env, seed)
        ep = run_episode(env, policy, job.task_info, seed, job.max_steps)
        ep.episode_index = index
        out.append(
            {
                "episode_index": index,
                "seed": seed,
                "return": ep.total_return,
                "length": ep.num_steps,
                "success": ep.success,
            }
        )
        if job.kind == "collect":
            episodes.append(ep)
        report(1)
    if job.kind == "collect":
        hook = (
            (lambda: _maybe_crash(CRASH_IN_WRITE_ENV, job.indices))
            if os.environ.get(CRASH_IN_WRITE_ENV)
            else None
        )
        kill = os.environ.get(KILL_MID_WRITE_ENV)
        mid = (
            (lambda: os.kill(os.getpid(), signal.SIGKILL))
            if kill is not None and int(kill) in job.indices
            else None
        )
        write_shard(job.folder, episodes, _crash_before_rename=hook, _crash_mid_write=mid)
    return out


def chunks(indices: Sequence[int], size: int) -> list[list[int]]:
    """Contiguous runs of indices, each split into chunks of at most ``size``."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and runs[-1][-1] == i - 1 and len(runs[-1]) < size:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def run_jobs(jobs: list[Job], workers: int, progress, desc: str) -> list[list[dict]]:
    total = sum(len(j.indices) for j in jobs)
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="ep", disable=not progress, dynamic_ncols=True)
    try:
        if not jobs:  # everything was collected already
            return []
        if workers == 1:
            return [run_job(job, bar.update) for job in jobs]
        ctx = mp.get_context("spawn")  # fork + MuJoCo/OpenGL state is not safe; spawn is
        queue = ctx.Queue()
        # Workers die with this process (SIGKILL included), and SIGTERM/SIGINT here terminate
        # them: orphans would keep writing shards that a rerun of the command races.
        with worker_pool(min(workers, len(jobs)), _init_worker, (queue,), mp_context=ctx) as pool:
            futures = {pool.submit(run_job, job): k for k, job in enumerate(jobs)}
            pending, results = set(futures), [None] * len(jobs)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while not queue.empty():
                    bar.update(queue.get())
                for f in done:
                    results[futures[f]] = f.result()  # re-raises a worker's error here
            return results
    finally:
        bar.close()


# ------------------------------------------------------------------------ stored episodes


def stored_summaries(folder) -> list[dict]:
    """Per-episode summaries of a task folder's complete shards (first copy of an index wins)."""
    seen: dict[int, dict] = {}
    for path in shard_paths(folder):
        table = read_table(path, ["episode_index", "seed", "rewards", "success"])
        for row in table.to_pylist():
            seen.setdefault(
                row["episode_index"],
                {
                    "episode_index": row["episode_index"],
                    "seed": row["seed"],
                    "return": float(np.sum(row["rewards"], dtype=np.float64)),
                    "length": len(row["rewards"]),
                    "success": row["success"],
                },
            )
    return list(seen.values())


def verify_stored_shards(folder, recorded: dict[str, int]) -> list:
    """Verify every complete shard of a task folder (gato/shards.py: footer, rows against the
    name and `recorded` (metadata.json's ``shard_rows``), every page); a damaged one is renamed
    aside with a line naming it, so that its episodes count as missing. Returns the new names."""
    moved = []
    for path in shard_paths(folder):
        problem = verify_shard(path, recorded.get(path.name))
        if problem is not None:
            target = quarantine(path)
            print(
                f"gato.collect: shard {path} is corrupt ({problem}); moved aside to "
                f"{target.name}, its episodes will be collected again",
                file=sys.stderr,
                flush=True,
            )
            moved.append(target)
    return moved


def stored_shard_rows(folder) -> dict[str, int]:
    """{shard name: rows} of a task folder's complete shards, from their footers."""
    return {path.name: shard_rows(path) for path in shard_paths(folder)}
