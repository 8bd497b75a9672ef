"""Issue 14's proof as one command (`make vl-proof`): does one Gato act, caption, answer and write
text, and does training on all of it together transfer or interfere? Results in
experiments/results/vl-proof.md.

    python experiments/vl_proof.py [--stages data,train,eval,grid,report] [--recipe ...]

Three runs of the same budget (the preset's `train` flags: size, steps, batch, sequence length,
learning rate), each the project's own `gato.train`, differing only in their task list:

- joint: the preset's control tasks and its language tasks (vl.scenes, text.corpus) together,
  mixed by the default family weights (Table 1's, gato/data_mixture.py);
- control: the control tasks only;
- language: the language tasks only.

Stages:
1. data: expert episodes of the control tasks (`gato.collect`, the preset's `data` flags; episodes
   already collected are skipped);
2. train: the three runs, --jobs at a time with one thread each (a run resumes from its newest
   checkpoint; a finished run is skipped);
3. eval: `gato.evaluate` on each final checkpoint, over that run's own tasks: expert-normalized
   scores of the control tasks (prompted rollouts, as the competence issue reports them), and
   caption exact match / token F1, VQA accuracy per question type and text bits per byte on the
   held-out scenes and corpus, each against its baseline (gato/evaluate_vl.py). An evaluation
   made by the same command on the same checkpoint step is reused;
4. grid: a PNG of held-out test scenes with the joint run's generated captions and the truth
   (from its evaluation's samples; no model is run);
5. report: the results table (--results), with the budget and every stage's wall time.

Wall times are recorded in <runs-dir>/times.json; evaluations and the grid go to --out.
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

from gato.cli import options_to_flags as flags  # noqa: E402 (after the path is set)

STAGES = ("data", "train", "eval", "grid", "report")
RUNS = ("joint", "control", "language")
GRID_SCENES = 8


@dataclass
class VLProofArgs:
    """Options of ``python experiments/vl_proof.py``."""

    stages: str = ",".join(STAGES)
    """comma-separated stages to run, in order: data, train, eval, grid, report"""
    recipe: str = "experiments/presets/vl-proof.json"
    """the proof's recipe: control_tasks, language_tasks, data, train and eval flags"""
    data_dir: str = "data"
    """collected expert data of the control tasks (made by the data stage)"""
    runs_dir: str = "runs/vl-proof"
    """training runs, logs and times.json (git-ignored)"""
    out: str = "experiments/results/vl-proof"
    """evaluation reports and the caption grid (committed)"""
    results: str = "experiments/results/vl-proof.md"
    """the results table (committed)"""
    jobs: int = 2
    """processes at once (one thread each)"""


def load_preset(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"vl_proof: no preset {path}")
    preset = json.loads(path.read_text())
    missing = {"control_tasks", "language_tasks", "data", "train", "eval"} - set(preset)
    if missing:
        raise SystemExit(f"vl_proof: {path} lacks {sorted(missing)}")
    return preset


def run_tasks(preset: dict) -> dict[str, str]:
    """The task list of each run."""
    control, language = preset["control_tasks"], preset["language_tasks"]
    return {"joint": f"{control},{language}", "control": control, "language": language}


def run_parallel(commands: dict[str, list[str]], logs: Path, jobs: int) -> dict[str, float]:
    """Run named commands, `jobs` at a time with one compute thread each, output in
    logs/<name>.log; the wall seconds of each. A failure stops the script with its log's tail."""
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pending, running, seconds = list(commands.items()), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
            name, cmd = pending.pop(0)
            print(f"vl_proof: {name}: {' '.join(cmd)}  (log: {logs / name}.log)", flush=True)
            log = open(logs / f"{name}.log", "w")  # noqa: SIM115 (closed when it ends)
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
            running[name] = (proc, log, time.time())
        time.sleep(0.5)
        for name, (proc, log, start) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            seconds[name] = round(time.time() - start, 1)
            if proc.returncode != 0:
                for other, *_ in running.values():
                    other.terminate()
                tail = (logs / f"{name}.log").read_text()[-3000:]
                raise SystemExit(f"vl_proof: {name} failed ({proc.returncode}):\n{tail}")
    return seconds


def final_step(run: Path) -> int | None:
    from gato.checkpoint import list_checkpoints

    found = list_checkpoints(run)
    return int(found[-1].name.split("_")[-1]) if found else None


def stage_data(args, preset, py) -> dict[str, list[str]]:
    collect = [*py, "-m", "gato.collect", "--data-dir", args.data_dir, "--no-progress"]
    tasks = [t for t in preset["control_tasks"].split(",") if t]
    return {f"collect-{t}": [*collect, "--task", t, *flags(preset["data"])] for t in tasks}


def stage_train(args, preset, py) -> dict[str, list[str]]:
    steps, commands = int(preset["train"]["steps"]), {}
    for name, tasks in run_tasks(preset).items():
        run = Path(args.runs_dir) / name
        done = final_step(run)
        if done is not None and done >= steps:
            print(f"vl_proof: {run} is finished (step {done})", flush=True)
            continue
        cmd = [*py, "-m", "gato.train", "--tasks", tasks, "--data-dir", args.data_dir,
               "--run-dir", str(run), *flags(preset["train"])]  # fmt: skip
        commands[f"train-{name}"] = cmd + (["--resume"] if done is not None else [])
    return commands


def eval_command(args, preset, py, name: str) -> list[str]:
    return [
        *py, "-m", "gato.evaluate", "--checkpoint", str(Path(args.runs_dir) / name),
        "--tasks", run_tasks(preset)[name], "--data-dir", args.data_dir,
        "--out", str(Path(args.out) / f"eval-{name}"), "--threads", "1", "--no-progress",
        *flags(preset["eval"]),
    ]  # fmt: skip


def stage_eval(args, preset, py) -> dict[str, list[str]]:
    commands = {}
    for name in RUNS:
        cmd, out = eval_command(args, preset, py, name), Path(args.out) / f"eval-{name}"
        made = out / "command.json"
        if made.is_file() and (out / "eval.json").is_file():
            old = json.loads(made.read_text())
            if old == {"command": cmd[1:], "step": final_step(Path(args.runs_dir) / name)}:
                print(f"vl_proof: {out} is up to date", flush=True)
                continue
        commands[f"eval-{name}"] = cmd
    return commands


def mark_evaluated(args, preset, py, names) -> None:
    """Record what made each new evaluation, so that a rerun can reuse it."""
    for name in names:
        run = Path(args.runs_dir) / name
        made = {"command": eval_command(args, preset, py, name)[1:], "step": final_step(run)}
        (Path(args.out) / f"eval-{name}" / "command.json").write_text(json.dumps(made) + "\n")


def write_grid(args) -> Path:
    """Held-out scenes with the joint run's generated captions (its evaluation's samples)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gato.vl.scenes import Scene

    report = json.loads((Path(args.out) / "eval-joint" / "eval.json").read_text())
    samples = [s for s in report["language"]["samples"] if "caption" in s][:GRID_SCENES]
    if not samples:
        raise SystemExit("vl_proof: the joint evaluation holds no caption sample")
    cols = min(4, len(samples))
    rows = -(-len(samples) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s in zip(axes.flat, samples, strict=False):
        ax.imshow(Scene.from_id(s["scene_id"]).render(), interpolation="nearest")
        wrap = lambda text: "\n".join(_wrap(text, 34))  # noqa: E731
        ax.set_title(
            f"scene {s['scene_id']}\nGato: {wrap(s['predicted'] or '(nothing)')}\n"
            f"truth: {wrap(s['caption'])}",
            fontsize=7,
            loc="left",
        )
    ckpt = Path(report["checkpoint"])
    fig.suptitle(f"Held-out scenes captioned by {ckpt.parent.parent.name}/{ckpt.name} (greedy)")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    path = Path(args.out) / "captions.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def main(argv=None) -> int:
    from gato.cli import parse_dataclass_args

    args, parser = parse_dataclass_args(
        VLProofArgs, argv, "python experiments/vl_proof.py", __doc__
    )
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := sorted(set(stages) - set(STAGES)):
        parser.error(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")
    preset = load_preset(ROOT / args.recipe)
    py, logs = [sys.executable], Path(args.runs_dir) / "logs"
    times_path = Path(args.runs_dir) / "times.json"
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    builders = {"data": stage_data, "train": stage_train, "eval": stage_eval}
    for stage in [s for s in STAGES if s in stages]:
        start = time.time()
        if stage == "report":
            from vl_proof_report import write_report  # the sibling script, on sys.path

            print(f"vl_proof: report: {write_report(args, preset, times)}", flush=True)
            continue
        if stage == "grid":
            print(f"vl_proof: grid: {write_grid(args)}", flush=True)
            times["grid"] = {"seconds": round(time.time() - start, 1)}
        else:
            commands = builders[stage](args, preset, py)
            if not commands:
                continue
            jobs = 1 if stage == "data" else args.jobs  # a collection uses both cores itself
            seconds = run_parallel(commands, logs, jobs)
            if stage == "eval":
                mark_evaluated(args, preset, py, [c.removeprefix("eval-") for c in commands])
            took = round(time.time() - start, 1)
            if stage == "train":  # a resumed run adds to the time it already took
                old = times.get("train", {"seconds": 0.0, "commands": {}})
                took = round(took + old["seconds"], 1)
                merged = {**old["commands"], **seconds}
                seconds = {
                    k: round(old["commands"].get(k, 0) + seconds.get(k, 0), 1) for k in merged
                }
            times[stage] = {"seconds": took, "commands": seconds}
        times_path.parent.mkdir(parents=True, exist_ok=True)
        times_path.write_text(json.dumps(times, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
