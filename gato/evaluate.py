"""Evaluate a checkpoint by rollouts, with expert-normalized scores (spec sections 9 and 10).

    python -m gato.evaluate --checkpoint runs/demo --tasks cartpole.balance,babyai.open

Per task, N rollouts (50 by default, as in the paper), each prompted with a successful
demonstration of the task: the collected episodes that pass the 80% filter, best first, rollout i
taking demonstration i mod --demos; the task's expert is rolled out for one if nothing was
collected. Reported: raw return, expert-normalized score per task (0% = uniformly random policy,
100% = expert; gato/scores.py), the mean per domain (family), and the share of tasks at or above
50% and 80% of expert. Written to --out as eval.json, eval.md and eval.png. Rollouts run in
spawned worker processes, each stepping --num-envs environments with one batched policy (one
forward per action token for all of them, gato/rollout.py); rollout i of a task always uses seed
--seed + 2,000,000 + i (disjoint from collection seeds) and its own sampling generator, so
results do not depend on --workers or --num-envs.

Vision-language and text tasks (`vl.*`, `text.*`) in the task list are not rolled out: the
checkpoint captions and answers questions about --vl-examples held-out generated scenes and scores
the held-out text corpus in bits per byte, each metric beside its baseline (gato/evaluate_vl.py);
the report gains those rows.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gato.cli import check_at_least, check_data_dir, load_user_checkpoint, parse_dataclass_args
from gato.errors import UserError, run_command
from gato.evaluate_report import THRESHOLDS, _pct, markdown_report, plot_report  # noqa: F401
from gato.evaluate_workers import PolicyOptions
from gato.rollout import MEMORIES, RolloutJob

DEFAULT_RUNS_DIR = "runs"
# Environments per worker that one batched policy acts for. Measured (make bench, suite rollout,
# experiments/results/batched-acting.md): the cost per env falls 3x from 1 to 8 envs and 1.2-1.7x
# more from 8 to 32; 16 takes most of that and keeps a 79M model's cache under 1 GB.
DEFAULT_NUM_ENVS = 16
EVAL_SEED_OFFSET = 2_000_000  # collection uses seeds from 0, random-policy returns 1,000,000+


@dataclass
class EvaluateArgs:
    """Options of ``python -m gato.evaluate``."""

    checkpoint: str | None = None
    """checkpoint folder or run folder (default: the newest checkpoint under --runs-dir)"""
    tasks: str | None = None
    """comma-separated tasks (default: the tasks the checkpoint records being trained on)"""
    episodes: int = 50
    """rollouts per task"""
    workers: int = 2
    """rollout worker processes (1: run in this process)"""
    num_envs: int = DEFAULT_NUM_ENVS
    """environments per worker, acted for together by one batched policy"""
    data_dir: str | None = None
    """collected data, for the demonstrations (default: $GATO_DATA or ./data)"""
    out: str | None = None
    """output folder (default: runs/eval/<run>-<checkpoint>)"""
    seed: int = 0
    """base seed: rollout i of a task uses seed + 2,000,000 + i"""
    demos: int = 10
    """distinct demonstrations per task; rollout i is prompted with demonstration i mod demos"""
    greedy: bool = False
    """take the most likely valid token instead of sampling"""
    greedy_tasks: str | None = None
    """comma-separated tasks or families (dmc, metaworld, babyai, atari, mujoco) acted greedily;
    the others sample at --temperature (the single-task ladder's choice: dmc,metaworld)"""
    temperature: float = 1.0
    """sampling temperature (0 = greedy)"""
    max_steps: int | None = None
    """cap on agent steps per rollout (default: the task's episode limit)"""
    context_tokens: int | None = None
    """attention window of the sliding memory (default: the model's block_size)"""
    prompt_tokens: int | None = None
    """tokens of the demonstration fed as prompt (default: context_tokens)"""
    memory: str | None = None
    """'sliding': a KV cache whose keys carry older context (Transformer-XL); 'window': every
    forward reads the prompt and the latest whole timesteps within context_tokens from scratch,
    as packed training windows do (default: window for a task trained on packed windows, whose
    window and prompt budget then also set the context and prompt defaults; else sliding)"""
    device: str = "cpu"
    """torch device of every worker"""
    bf16: bool = False
    """run the policy in bfloat16 (CUDA devices with bf16 support, or the CPU)"""
    threads: int = 1
    """torch CPU threads per worker"""
    runs_dir: str = DEFAULT_RUNS_DIR
    """where to look for the newest checkpoint when --checkpoint is not given"""
    no_progress: bool = False
    """no progress bar"""
    vl_examples: int = 200
    """held-out generated scenes (test split) captioned or asked about, for vl.* tasks"""
    text_documents: int | None = None
    """held-out corpus documents scored in bits per byte, for text.* tasks (default: all 18)"""
    vl_max_new_tokens: int = 48
    """most tokens generated per caption or answer"""


# ------------------------------------------------------------------ aggregation (pure)


def summarize_task(
    task: str,
    family: str,
    returns: Sequence[float],
    successes: Sequence[bool | None] = (),
    table: Mapping[str, dict] | None = None,
) -> dict:
    """One task's row: rollouts, mean/std return and its normalized score (None without a
    score entry). The normalized score of the mean return is the mean of the rollouts'."""
    from gato.scores import normalized_score

    r = np.asarray(returns, np.float64)
    if r.size == 0:
        raise ValueError(f"{task}: no rollouts")
    try:
        score = normalized_score(task, float(r.mean()), table)
    except (KeyError, ValueError):
        score = None
    known = [bool(s) for s in successes if s is not None]
    return {
        "task": task,
        "family": family,
        "episodes": int(r.size),
        "mean_return": float(r.mean()),
        "std_return": float(r.std()),
        "normalized_score": score,
        "success_rate": float(np.mean(known)) if known else None,
    }


def aggregate(rows: Sequence[Mapping]) -> dict:
    """Per-domain mean normalized score and the share of tasks at or above 50% / 80% of expert,
    over the tasks that have a normalized score."""
    scored = [r for r in rows if r.get("normalized_score") is not None]
    by_family: dict[str, list[float]] = defaultdict(list)
    for r in scored:
        by_family[r["family"]].append(float(r["normalized_score"]))
    scores = np.asarray([float(r["normalized_score"]) for r in scored], np.float64)
    out = {
        "tasks": len(rows),
        "tasks_scored": len(scored),
        "mean_normalized_score": float(scores.mean()) if scored else None,
        "median_normalized_score": float(np.median(scores)) if scored else None,
        "per_family": {
            fam: {"tasks": len(v), "mean_normalized_score": float(np.mean(v))}
            for fam, v in sorted(by_family.items())
        },
    }
    for t in THRESHOLDS:
        out[f"share_above_{round(100 * t)}"] = float(np.mean(scores >= t)) if scored else None
    return out


# ------------------------------------------------------------------------------ rollouts


def rollout_jobs(task: str, demos: Sequence, episodes: int, seed: int, max_steps) -> list:
    """Rollout i: seed + EVAL_SEED_OFFSET + i, prompted with demonstration i mod len(demos)."""
    return [
        RolloutJob(
            task=task,
            index=i,
            seed=seed + EVAL_SEED_OFFSET + i,
            max_steps=max_steps,
            prompt=demos[i % len(demos)] if demos else None,
            demo_index=(demos[i % len(demos)].episode_index if demos else None),
        )
        for i in range(episodes)
    ]


def job_chunks(jobs: Sequence[RolloutJob], workers: int) -> list[list[RolloutJob]]:
    """Each task's jobs split into `workers` contiguous, near-equal chunks (one task each)."""
    by_task: dict[str, list[RolloutJob]] = defaultdict(list)
    for job in jobs:
        by_task[job.task].append(job)
    chunks = []
    for task_jobs in by_task.values():
        for part in np.array_split(np.arange(len(task_jobs)), max(1, workers)):
            if len(part):
                chunks.append([task_jobs[i] for i in part])
    return chunks


def run_rollouts(
    jobs: list[RolloutJob],
    checkpoint: str,
    options: PolicyOptions,
    workers: int = 2,
    device: str = "cpu",
    threads: int = 1,
    progress: bool = True,
) -> list[dict]:
    """Every job's result, in job order; in spawned workers (or here if workers <= 1), each
    running options.num_envs environments per task with one batched policy."""
    from tqdm import tqdm

    from gato import evaluate_workers as w

    chunks = job_chunks(jobs, workers)
    bar = tqdm(total=len(jobs), desc="rollouts", unit="ep", disable=not progress)
    done: dict[tuple[str, int], dict] = {}
    if workers <= 1:
        import torch

        before = torch.get_num_threads()
        w.init_worker(checkpoint, device, threads, options)
        try:
            for chunk in chunks:
                for r in w.run_chunk(chunk):
                    done[(r["task"], r["index"])] = r
                bar.update(len(chunk))
        finally:
            w.close()
            torch.set_num_threads(before)
    else:
        from gato.procs import worker_pool

        initargs = (checkpoint, device, threads, options)
        with worker_pool(workers, w.init_worker, initargs) as pool:
            futures = {pool.submit(w.run_chunk, chunk): chunk for chunk in chunks}
            for fut in as_completed(futures):
                chunk = futures[fut]
                try:
                    results = fut.result()
                except Exception as e:
                    for f in futures:
                        f.cancel()
                    first, last = chunk[0].index, chunk[-1].index
                    raise RuntimeError(
                        f"rollouts {first}-{last} of {chunk[0].task} failed: {e}"
                    ) from e
                for r in results:
                    done[(r["task"], r["index"])] = r
                bar.update(len(chunk))
    bar.close()
    return [done[(job.task, job.index)] for job in jobs]


WINDOW = {"sliding": "", "window": " (window memory)"}  # how a report names the memory


def greedy_names(text: str | None) -> frozenset[str]:
    """--greedy-tasks as canonical task and family names; an unknown one is a UserError."""
    from gato.deploy import task_by_flag
    from gato.envs import FAMILIES

    names = set()
    for name in (text or "").split(","):
        if name := name.strip():
            names.add(name if name in FAMILIES else task_by_flag(name, "--greedy-tasks").name)
    return frozenset(names)


def decoding(options: PolicyOptions, task: str, family: str, temperature: float) -> str:
    """How a report names one task's action decoding."""
    return "greedy" if options.greedy_for(task, family) else f"temperature {temperature}"


def default_out(checkpoint: Path) -> Path:
    run = checkpoint.parent.parent.name if checkpoint.parent.name == "checkpoints" else "run"
    return Path(DEFAULT_RUNS_DIR) / "eval" / f"{run}-{checkpoint.name}"


def main(argv: list[str] | None = None) -> dict:
    """The command: the report; a mistake in its input is a UserError (one line, exit 2)."""
    args, _ = parse_dataclass_args(
        EvaluateArgs, argv, "python -m gato.evaluate", __doc__, {"memory": MEMORIES}
    )
    ones = ("episodes", "workers", "demos", "num_envs", "max_steps", "context_tokens", "threads")
    check_at_least(args, {**dict.fromkeys(ones, 1), "temperature": 0, "prompt_tokens": 0})
    check_data_dir(args.data_dir)
    from gato import evaluate_vl

    evaluate_vl.check_language_args(args.vl_examples, args.text_documents)
    from gato.checkpoint import (
        CheckpointError,
        checkpoint_tasks,
        newest_checkpoint,
        trained_windows,
    )
    from gato.deploy import check_bf16, task_by_flag
    from gato.layout_check import LayoutError, check_tasks_fit
    from gato.prompts import demonstrations, steps_for_tokens, truncate_episode

    try:
        path = args.checkpoint or newest_checkpoint(args.runs_dir)
    except CheckpointError as e:
        raise UserError(str(e)) from e
    ckpt = load_user_checkpoint(path)
    names = args.tasks.split(",") if args.tasks else checkpoint_tasks(ckpt.state)
    if not names:
        raise UserError(f"{ckpt.path} records no task list: pass --tasks")
    source = "--tasks" if args.tasks else f"the task list of {ckpt.path}"
    control, language = evaluate_vl.split_tasks(names)  # vl.* and text.*: evaluate_vl.py
    infos = [task_by_flag(t, source) for t in control]
    options = PolicyOptions(
        args.context_tokens,
        args.prompt_tokens,
        args.greedy,
        args.temperature,
        num_envs=args.num_envs,
        bf16=args.bf16,
        memory=args.memory,
        windows=trained_windows(ckpt.state),
        greedy_tasks=greedy_names(args.greedy_tasks),
    )
    try:
        for info in infos:
            check_tasks_fit([info], ckpt.config, options.for_task(info.name)[0])
        if args.bf16:
            check_bf16(args.device)
    except (LayoutError, ValueError) as e:
        raise UserError(str(e)) from e
    out = Path(args.out) if args.out else default_out(ckpt.path)
    try:  # before the rollouts: an --out that cannot be made would only fail after them
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out} cannot be made ({e.strerror or e})") from e
    trained = checkpoint_tasks(ckpt.state)
    jobs, layouts = [], {}
    for info in infos:
        context, prompt_tokens, memory = options.for_task(info.name)
        context = context or ckpt.config.block_size
        prompt_tokens = context if prompt_tokens is None else prompt_tokens
        layouts[info.name] = (
            f"context {context} tokens{WINDOW[memory]}, prompt {prompt_tokens} tokens"
        )
        demos = demonstrations(info.name, args.data_dir, args.demos, args.seed)
        # Workers get only the steps a prompt uses (Atari demonstrations are thousands of frames).
        steps = steps_for_tokens(info, prompt_tokens)
        demos = [truncate_episode(d, steps) for d in demos] if prompt_tokens > 0 else []
        jobs += rollout_jobs(info.name, demos, args.episodes, args.seed, args.max_steps)
    start = time.time()
    progress = not args.no_progress
    results = (
        run_rollouts(
            jobs, str(ckpt.path), options, args.workers, args.device, args.threads, progress
        )
        if jobs
        else []
    )
    rows = []
    for info in infos:
        mine = [r for r in results if r["task"] == info.name]
        row = summarize_task(
            info.name, info.family, [r["return"] for r in mine], [r["success"] for r in mine]
        )
        row["trained_on"] = None if trained is None else info.name in trained
        row["layout"] = layouts[info.name]
        row["decoding"] = decoding(options, info.name, info.family, args.temperature)
        row["median_action_ms"] = float(np.median([r["median_action_ms"] for r in mine]))
        rows.append(row)
    policy = "greedy" if args.greedy else f"temperature {args.temperature}"
    if options.greedy_tasks and not args.greedy:
        policy = f"greedy on {', '.join(sorted(options.greedy_tasks))}, else {policy}"
    shared = set(layouts.values())
    layout = shared.pop() if len(shared) == 1 else "per-task context (see the tasks' layout)"
    report = {
        "checkpoint": str(ckpt.path),
        "step": ckpt.step,
        "episodes": args.episodes,
        "policy": f"{policy}, {layout}",
        "args": asdict(args),
        "seconds": round(time.time() - start, 1),
        "tasks": rows,
        "aggregate": aggregate(rows),
        "rollouts": results,
    }
    if language:
        report["language"] = evaluate_vl.evaluate_language_tasks(
            ckpt.path, language, args.vl_examples, args.text_documents, args.vl_max_new_tokens,
            args.context_tokens, args.device, args.threads,
        )  # fmt: skip
    (out / "eval.json").write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    md = markdown_report(report)
    (out / "eval.md").write_text(md)
    plot_report(report, out / "eval.png")
    print(md)
    print(f"wrote {out}/eval.json, eval.md, eval.png")
    return report


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    raise TypeError(f"not JSON-able: {type(x).__name__}")


if __name__ == "__main__":
    sys.exit(run_command(main, prog="python -m gato.evaluate"))
