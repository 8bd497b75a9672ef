"""`make demo`: the project's main job on a small default, on a CPU, in about five minutes.

Every stage is the project's own command, run in order on a small embedded default:

1. expert data: a few episodes per task from the project's experts (`gato.collect`);
2. training: a small Gato on that data (`gato.train`: prompt conditioning, masked loss);
3. evaluation: prompted rollouts of the trained checkpoint in every task's environment,
   expert-normalized (`gato.evaluate`: JSON, markdown table, bar chart);
4. deployment: a prompt file made from a demonstration (`gato.prompts`), then the policy acting
   in the environment with per-token action sampling (`gato.deploy`), recorded as a video.

Everything lands in --out (default runs/demo). A model this small trained this briefly is far
from the experts; the demo shows the whole pipeline working, and its table says how far.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gato.collect import collect_task
from gato.deploy import task_by_flag
from gato.envs import get_task
from gato.errors import UserError, run_command


@dataclass
class DemoArgs:
    """Options of ``python -m gato.demo``."""

    out: str = "runs/demo"
    """folder for the data, the run, the evaluation, the prompt and the video"""
    tasks: str = "cartpole.balance,metaworld.reach,babyai.go-to-red-ball"
    """comma-separated tasks to collect, train on, evaluate and deploy (the first one)"""
    episodes: int = 12
    """expert episodes collected per task"""
    size: str = "debug"
    """model size from gato.config.SIZES"""
    steps: int = 1500
    """training steps"""
    batch_size: int = 8
    """sequences per training step"""
    seq_len: int = 512
    """tokens per training sequence: debug's whole context (gato.train refuses a context
    shorter than one timestep of a task; a BabyAI timestep is ~155 tokens)"""
    window_steps: int = 0
    """timesteps per packed training window (gato.train --window-steps; 0: one window of
    --seq-len tokens per row, the paper's layout); the rollouts read the same window"""
    task_window_steps: str = ""
    """--window-steps per task or family, as name=steps,... (gato.train --task-window-steps)"""
    max_prompt_frac: float = 0.5
    """a prompt's budget as a share of --seq-len, or of a packed window (there up to 8: 1.0
    with --window-steps 1 is a one-timestep prompt)"""
    lr: float = 1e-3
    """peak learning rate"""
    eval_episodes: int = 5
    """evaluation rollouts per task"""
    greedy_tasks: str = "dmc"
    """tasks or families whose evaluation and deployment act greedily (gato.evaluate
    --greedy-tasks); the others sample at temperature 1 ("": sample all, the paper's
    deployment). Measured on the default demo's checkpoint, 20 rollouts per task: greedy lifts
    cartpole.balance from 21.3 to 46.4 percent of expert but drops metaworld.reach from 31.9 to
    3.6, so only dmc is greedy"""
    seed: int = 0
    """seed for collection, training and rollouts"""
    workers: int = 2
    """worker processes for collection and evaluation"""


def parse_args(argv=None) -> DemoArgs:
    """The options; a value that cannot work is a UserError naming its flag."""
    from gato.cli import check_at_least, parse_dataclass_args
    from gato.config import SIZES

    choices = {"size": sorted(SIZES)}
    args = parse_dataclass_args(DemoArgs, argv, "python -m gato.demo", __doc__, choices)[0]
    ones = ("episodes", "steps", "batch_size", "seq_len", "eval_episodes", "workers")
    check_at_least(args, {**dict.fromkeys(ones, 1), "window_steps": 0, "max_prompt_frac": 0})
    if not args.lr > 0:
        raise UserError(f"--lr must be positive, got {args.lr}")
    return args


def _stage(number: int, text: str) -> None:
    print(f"\n=== {number}/4 {text}", flush=True)


def main(argv=None) -> dict:
    from gato import deploy, evaluate, prompts, train
    from gato.evaluate import greedy_names
    from gato.evaluate_workers import PolicyOptions

    args = parse_args(argv)
    out = Path(args.out)
    data, run, evaluation = out / "data", out / "run", out / "eval"
    names = [name.strip() for name in args.tasks.split(",") if name.strip()]
    if not names:
        raise UserError(f"--tasks {args.tasks!r}: give comma-separated task names")
    tasks = [task_by_flag(name, "--tasks").name for name in names]
    greedy = PolicyOptions(greedy_tasks=greedy_names(args.greedy_tasks))  # fails before training
    started = time.perf_counter()

    _stage(1, f"collecting {args.episodes} expert episodes per task into {data}")
    for task in tasks:
        collect_task(
            get_task(task),
            args.episodes,
            data_dir=data,
            seed=args.seed,
            workers=args.workers,
            random_episodes=2,
        )

    _stage(2, f"training a {args.size} Gato for {args.steps} steps into {run}")
    # A finished demo run is kept; a new `make demo` over it trains afresh in its place.
    if (run / "checkpoints").is_dir():
        import shutil

        shutil.rmtree(run)
    train.main(
        [
            "--size",
            args.size,
            "--data-dir",
            str(data),
            "--tasks",
            ",".join(tasks),
            "--run-dir",
            str(run),
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--seq-len",
            str(args.seq_len),
            "--window-steps",
            str(args.window_steps),
            "--task-window-steps",
            args.task_window_steps,
            "--max-prompt-frac",
            str(args.max_prompt_frac),
            "--lr",
            str(args.lr),
            "--seed",
            str(args.seed),
            "--eval-every",
            str(max(1, args.steps // 4)),
            "--ckpt-every",
            str(args.steps),
            "--num-workers",
            "1",
        ]
    )

    _stage(3, f"evaluating: {args.eval_episodes} prompted rollouts per task")
    report = evaluate.main(
        [
            "--checkpoint",
            str(run),
            "--tasks",
            ",".join(tasks),
            "--data-dir",
            str(data),
            "--episodes",
            str(args.eval_episodes),
            "--workers",
            str(args.workers),
            "--seed",
            str(args.seed),
            "--out",
            str(evaluation),
            *(["--greedy-tasks", args.greedy_tasks] if args.greedy_tasks else []),
        ]
    )

    _stage(4, f"deploying on {tasks[0]} with a prompt made from a demonstration")
    prompt, first = out / "demo.pkl", get_task(tasks[0])
    video = out / f"{tasks[0]}.mp4"
    prompts.main(["--task", tasks[0], "--out", str(prompt), "--data-dir", str(data)])
    deploy.main(
        [
            "--prompt",
            str(prompt),
            "--checkpoint",
            str(run),
            "--episodes",
            "1",
            "--seed",
            str(args.seed),
            "--video",
            str(video),
            *(["--greedy"] if greedy.greedy_for(first.name, first.family) else []),
        ]
    )

    minutes = (time.perf_counter() - started) / 60
    summary = {
        "minutes": round(minutes, 1),
        "tasks": report["tasks"],
        "aggregate": report["aggregate"],
        "plots": {"training loss": str(run / "loss.png"), "scores": str(evaluation / "eval.png")},
        "video": str(video),
        "prompt": str(prompt),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"\n=== done in {minutes:.1f} min. Expert-normalized scores (0% random, 100% expert):")
    for row in report["tasks"]:
        score = row["normalized_score"]
        shown = "n/a (no score entry)" if score is None else f"{score:8.1%}"
        print(f"  {row['task']:28} return {row['mean_return']:9.2f}   score {shown}")
    print(f"plots: {run / 'loss.png'} (training loss), {evaluation / 'eval.png'} (scores)")
    print(f"table: {evaluation / 'eval.md'}; video: {video}; summary: {out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    sys.exit(run_command(main, prog="python -m gato.demo"))
