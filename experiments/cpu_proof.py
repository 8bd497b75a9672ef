"""Issue 7's proof on a 2-core CPU as one command (`make reproduce-cpu`); results in
experiments/results/cpu-proof.md.

    python experiments/cpu_proof.py [--stages data,pretrain,eval,fig9,report] [--runs-dir ...]

Every stage is the project's own command, two processes at a time (one per core, one thread each):

1. data: the default expert suite (`gato.collect --suite default`) and 120 cartpole.swingup
   episodes, enough for Figure 9's 100-demonstration budget;
2. pretrain: experiments/presets/cpu-proof.json twice, side by side: with prompt conditioning
   (--prompt-prob 0.25) and without (--prompt-prob 0, the ablation). cartpole.swingup and
   metaworld.assembly are not in the preset's task list: they are held out;
3. eval: `gato.evaluate` on each final checkpoint, --episodes rollouts per pretraining task: the
   prompted model prompted (as deployed), the ablation model, trained without prompts, unprompted
   (and with --unprompted-eval the prompted model unprompted too);
4. fig9: experiments/fig9.py on cartpole.swingup, the pretrained and the from-scratch halves in
   two processes, then merged into one table and plot. The task must be held out of the
   pretraining (gato.finetune refuses one the checkpoint was trained on); --fig9-force fine-tunes
   on a pretrained task anyway, and the figure then says it was not held out;
5. report: the ablation table and plot, and the wall time of every stage.

A stage whose outputs exist is skipped (pretraining resumes from its newest checkpoint, fig9
reuses finished runs), so an interrupted reproduction is finished by running the command again.
Wall times are recorded in <runs-dir>/times.json; outputs go to --out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain script: import this checkout's gato

STAGES = ("data", "pretrain", "eval", "fig9", "report")
# (name, pretraining run, prompt tokens at evaluation: None = a whole context of demonstration)
EVALS = (
    ("prompted", "prompted", None),
    ("noprompt", "noprompt", 0),
    ("prompted-unprompted", "prompted", 0),  # only with --unprompted-eval
)
PROMPT_PROBS = {"prompted": 0.25, "noprompt": 0.0}


@dataclass
class ProofArgs:
    """Options of ``python experiments/cpu_proof.py``."""

    stages: str = ",".join(STAGES)
    """comma-separated stages to run, in order: data, pretrain, eval, fig9, report"""
    train_preset: str = "experiments/presets/cpu-proof.json"
    """gato.train preset of both pretraining runs (size, task list, steps, batch, learning rate)"""
    data_dir: str = "data"
    """collected expert data (made by the data stage)"""
    runs_dir: str = "runs/cpu-proof"
    """pretraining runs, fine-tuning runs, logs and times.json (git-ignored)"""
    out: str = "experiments/results/cpu-proof"
    """evaluation reports, Figure 9 and the ablation (committed)"""
    episodes: int = 20
    """evaluation rollouts per task"""
    eval_greedy_tasks: str = "dmc,metaworld"
    """tasks or families acted greedily at evaluation (gato.evaluate --greedy-tasks; the others
    sample at temperature 1): the single-task ladder's choice, greedy for continuous control
    and sampled for BabyAI, where greedy loops (experiments/results/ladder.md); "" samples all"""
    eval_workers: int = 1
    """rollout worker processes per evaluation (two evaluations run side by side, one each)"""
    eval_max_steps: int = 0
    """cap on agent steps per evaluation rollout, here and in fine-tuning (0: the task's limit)"""
    fig9_task: str = "cartpole.swingup"
    """the held-out task of Figure 9 (not in the --train-preset tasks)"""
    fig9_force: bool = False
    """fine-tune on --fig9-task even if the pretraining covered it (fig9.py --force): the figure
    is then marked as not held out"""
    fig9_demos: str = "1,10,100"
    """demonstration budgets"""
    seeds: int = 2
    """fine-tuning seeds per budget and initialization"""
    ft_steps: int = 1000
    """fine-tuning steps per run"""
    ft_eval_every: int = 500
    """steps between fine-tuning rollout evaluations (also at step 0 and the end)"""
    ft_eval_episodes: int = 10
    """rollouts per fine-tuning evaluation"""
    ft_batch_size: int = 8
    """fine-tuning batch (sequences)"""
    ft_seq_len: int = 128
    """fine-tuning sequence length, also the rollouts' context (18 cartpole timesteps)"""
    ft_lr: float = 3e-4
    """fine-tuning learning rate, the same for both initializations"""
    jobs: int = 2
    """processes at once (one thread each)"""
    unprompted_eval: bool = False
    """also evaluate the prompted model without prompts (separates training from prompting)"""
    before: str = ""
    """an earlier proof's --out (e.g. experiments/results/cpu-proof): the report puts its prompted
    scores beside this one's in <out>/before-after.md ("": none)"""


def run_parallel(commands: dict[str, list[str]], logs: Path, jobs: int) -> None:
    """Run named commands, `jobs` at a time with one compute thread each; logs/<name>.log holds
    each one's output. Any failure stops the script with the tail of its log."""
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pending, running = list(commands.items()), {}
    while pending or running:
        while pending and len(running) < jobs:
            name, cmd = pending.pop(0)
            print(f"cpu_proof: {name}: {' '.join(cmd)}  (log: {logs / name}.log)", flush=True)
            log = open(logs / f"{name}.log", "w")  # noqa: SIM115 (closed when the process ends)
            running[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log), log)
        time.sleep(2)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            if proc.returncode != 0:
                for other, _ in running.values():
                    other.terminate()
                tail = (logs / f"{name}.log").read_text()[-3000:]
                raise SystemExit(f"cpu_proof: {name} failed ({proc.returncode}):\n{tail}")


def final_step(run: Path) -> int | None:
    from gato.checkpoint import list_checkpoints

    found = list_checkpoints(run)
    return int(found[-1].name.split("_")[-1]) if found else None


def stage_data(args: ProofArgs, py: list[str]) -> dict[str, list[str]]:
    collect = [*py, "-m", "gato.collect", "--data-dir", args.data_dir, "--no-progress"]
    # One after the other: the suite fills both cores itself, then swing-up is topped up.
    run_parallel({"collect-suite": [*collect, "--suite", "default", "--workers", "2"]},
                 Path(args.runs_dir) / "logs", 1)  # fmt: skip
    fig9_demos = max(int(d) for d in args.fig9_demos.split(","))
    extra = str(max(120, fig9_demos + 20))  # a margin for episodes the 80% filter drops
    return {"collect-fig9": [*collect, "--task", args.fig9_task, "--episodes", extra]}


def stage_pretrain(args: ProofArgs, py: list[str]) -> dict[str, list[str]]:
    steps = json.loads((ROOT / args.train_preset).read_text())["steps"]
    commands = {}
    for name, prob in PROMPT_PROBS.items():
        run = Path(args.runs_dir) / f"pretrain-{name}"
        done = final_step(run)
        if done is not None and done >= steps:
            print(f"cpu_proof: {run} is finished (step {done})", flush=True)
            continue
        cmd = [*py, "-m", "gato.train", "--preset", args.train_preset, "--data-dir",
               args.data_dir, "--prompt-prob", str(prob), "--run-dir", str(run)]  # fmt: skip
        commands[f"pretrain-{name}"] = cmd + (["--resume"] if done is not None else [])
    return commands


def stage_eval(args: ProofArgs, py: list[str]) -> dict[str, list[str]]:
    preset = json.loads((ROOT / args.train_preset).read_text())
    tasks, commands = preset["tasks"], {}
    for name, run_name, prompt_tokens in EVALS if args.unprompted_eval else EVALS[:2]:
        run, out = Path(args.runs_dir) / f"pretrain-{run_name}", Path(args.out) / f"eval-{name}"
        step = final_step(run)
        if (step or 0) < preset["steps"]:
            print(
                f"cpu_proof: {run} has not finished its {preset['steps']} steps (at "
                f"{step}): eval-{name} waits for the pretrain stage",
                flush=True,
            )
            continue
        report = out / "eval.json"
        if report.is_file():
            old = json.loads(report.read_text())
            same = (
                old["args"].get("max_steps") == (args.eval_max_steps or None)
                and (old["args"].get("greedy_tasks") or "") == args.eval_greedy_tasks
            )
            if same and old["step"] == step and old["episodes"] == args.episodes:
                print(f"cpu_proof: {report} is up to date", flush=True)
                continue
        cmd = [*py, "-m", "gato.evaluate", "--checkpoint", str(run), "--tasks", tasks,
               "--episodes", str(args.episodes), "--workers", str(args.eval_workers),
               "--data-dir", args.data_dir,
               "--out", str(out), "--no-progress"]  # fmt: skip
        cmd += [] if prompt_tokens is None else ["--prompt-tokens", str(prompt_tokens)]
        cmd += ["--greedy-tasks", args.eval_greedy_tasks] if args.eval_greedy_tasks else []
        commands[f"eval-{name}"] = cmd + max_steps(args, "--max-steps")
    return commands


def max_steps(args: ProofArgs, flag: str) -> list[str]:
    return [flag, str(args.eval_max_steps)] if args.eval_max_steps else []


def fig9_command(args: ProofArgs, py: list[str], *extra: str) -> list[str]:
    return [
        *py, "experiments/fig9.py", "--task", args.fig9_task,
        "--ckpt", str(Path(args.runs_dir) / "pretrain-prompted"), "--demos", args.fig9_demos,
        "--seeds", str(args.seeds), "--steps", str(args.ft_steps),
        "--eval-every", str(args.ft_eval_every), "--eval-episodes", str(args.ft_eval_episodes),
        "--data-dir", args.data_dir, "--runs-dir", str(Path(args.runs_dir) / "fig9"),
        "--batch-size", str(args.ft_batch_size), "--seq-len", str(args.ft_seq_len),
        "--lr", str(args.ft_lr),
        "--eval-workers", "1", "--device", "cpu", *max_steps(args, "--eval-max-steps"),
        *(["--force"] if args.fig9_force else []), *extra,
    ]  # fmt: skip


def stage_fig9(args: ProofArgs, py: list[str]) -> dict[str, list[str]]:
    partial = Path(args.runs_dir) / "fig9-halves"
    return {
        "fig9-pretrained": fig9_command(args, py, "--no-scratch", "--out", str(partial / "a")),
        "fig9-scratch": fig9_command(args, py, "--no-pretrained", "--out", str(partial / "b")),
    }


def fig9_done(args: ProofArgs, py: list[str], times: dict) -> bool:
    """The merged figure exists and was made by the same command."""
    merged = Path(args.out) / f"fig9_{args.fig9_task}.json"
    return merged.is_file() and times.get("fig9", {}).get("merge") == fig9_command(
        args, py[1:], "--out", args.out
    )


def main(argv=None) -> None:
    from gato.cli import parse_dataclass_args

    args = parse_dataclass_args(ProofArgs, argv, "python experiments/cpu_proof.py", __doc__)[0]
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := sorted(set(stages) - set(STAGES)):
        raise SystemExit(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")
    py, logs = [sys.executable], Path(args.runs_dir) / "logs"
    times_path = Path(args.runs_dir) / "times.json"
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    builders = {"data": stage_data, "pretrain": stage_pretrain, "eval": stage_eval,
                "fig9": stage_fig9}  # fmt: skip
    for stage in [s for s in STAGES if s in stages]:
        start = time.time()
        if stage == "report":
            from cpu_proof_report import write_report  # the sibling script, on sys.path

            write_report(args)
            continue
        if stage == "fig9" and fig9_done(args, py, times):
            print(f"cpu_proof: fig9 is up to date in {args.out}", flush=True)
            continue
        commands = builders[stage](args, py)
        run_parallel(commands, logs, args.jobs)
        if commands:
            times[stage] = {"seconds": round(time.time() - start, 1), "jobs": sorted(commands)}
        if stage == "fig9":  # merge both halves (every run is reused) into the final table
            run_parallel({"fig9-merge": fig9_command(args, py, "--out", args.out)}, logs, 1)
            times[stage]["merge"] = fig9_command(args, py[1:], "--out", args.out)
        times_path.parent.mkdir(parents=True, exist_ok=True)
        times_path.write_text(json.dumps(times, indent=1) + "\n")


if __name__ == "__main__":
    main()
