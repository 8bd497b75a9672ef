"""The single-task ladder (issue 12): one `small` Gato per task, trained on that task alone and
scored by 50 rollouts, one command each (`make ladder TASK=babyai.go-to-red-ball`).

    python experiments/ladder.py --task babyai.go-to-red-ball [--stages data,train,eval,report]

The recipe of a task is experiments/presets/ladder/<task>.json:

    {"comment": "...", "goal": {"metric": "success_rate", "at_least": 0.95},
     "data": {"episodes": 1000, ...gato.collect flags},
     "train": {...gato.train flags: size, steps, batch_size, seq_len, lr...},
     "eval": {"episodes": 50, ...gato.evaluate flags}}

Stages are the project's own commands: `gato.collect` (expert episodes into --data-dir),
`gato.train` on that task alone (resumes an interrupted run), `gato.evaluate` on the final
checkpoint, and a report that adds the task's row to experiments/results/ladder.md with the
goal, the number reached, the recipe, and the wall time of every stage. A stage whose outputs
exist is skipped, so an interrupted ladder run is finished by running the command again.
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

STAGES = ("data", "train", "eval", "report")
METRICS = {"success_rate": "success", "normalized_score": "of expert"}


@dataclass
class LadderArgs:
    """Options of ``python experiments/ladder.py``."""

    task: str = ""
    """the task to climb: its recipe is experiments/presets/ladder/<task>.json (default
    babyai.go-to-red-ball; a --recipe names its own task, and a different --task is an error)"""
    stages: str = ",".join(STAGES)
    """comma-separated stages to run, in order: data, train, eval, report"""
    preset_dir: str = "experiments/presets/ladder"
    """folder of the per-task recipes"""
    recipe: str = ""
    """a recipe file to climb instead of <preset-dir>/<task>.json (a variant, for ablations); its
    runs go to <runs-dir>/<the file's stem>"""
    data_dir: str = "data"
    """collected expert data (a recipe's own "data_dir" wins: noise-injected data has its own)"""
    runs_dir: str = "runs/ladder"
    """training runs, evaluations, logs and times (git-ignored)"""
    results: str = "experiments/results/ladder.md"
    """the committed table, one row per task"""
    threads: int = 2
    """torch CPU threads of training and evaluation"""


def run(name: str, cmd: list[str], logs: Path, threads: int) -> float:
    """Run one stage's command with its output in logs/<name>.log; its wall time in seconds."""
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print(f"ladder: {name}: {' '.join(cmd)}  (log: {logs / name}.log)", flush=True)
    start = time.time()
    with open(logs / f"{name}.log", "w") as log:
        code = subprocess.call(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        tail = (logs / f"{name}.log").read_text()[-3000:]
        raise SystemExit(f"ladder: {name} failed ({code}):\n{tail}")
    return time.time() - start


DEFAULT_TASK = "babyai.go-to-red-ball"


def recipe_path(args: LadderArgs) -> Path:
    if args.recipe:
        return ROOT / args.recipe
    return ROOT / args.preset_dir / f"{args.task or DEFAULT_TASK}.json"


def recipe_task(args: LadderArgs, recipe: dict) -> str:
    """The task a recipe climbs: a variant's own "task" key (so that it cannot train another
    task by a wrong --task), else --task (a ladder recipe is named by its task)."""
    named = recipe.get("task")
    if named and args.task and args.task != named:
        raise SystemExit(
            f"ladder: {recipe_path(args)} is a recipe for {named}, not --task {args.task}"
        )
    if args.recipe and not named:
        raise SystemExit(f'ladder: {recipe_path(args)} names no "task"; add one')
    return named or args.task or DEFAULT_TASK


def load_recipe(args: LadderArgs) -> dict:
    path = recipe_path(args)
    if not path.is_file():
        known = sorted(p.stem for p in (ROOT / args.preset_dir).glob("*.json"))
        raise SystemExit(f"ladder: no recipe {path} (recipes: {', '.join(known) or 'none'})")
    recipe = json.loads(path.read_text())
    missing = {"goal", "data", "train", "eval"} - set(recipe)
    if missing:
        raise SystemExit(f"ladder: {path} lacks {sorted(missing)}")
    if recipe["goal"].get("metric") not in METRICS:
        raise SystemExit(f"ladder: {path}: goal.metric must be one of {sorted(METRICS)}")
    return recipe


def main(argv: list[str] | None = None) -> int:
    from gato.cli import parse_dataclass_args

    args, parser = parse_dataclass_args(LadderArgs, argv, "python experiments/ladder.py", __doc__)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")
    recipe = load_recipe(args)
    args.task = recipe_task(args, recipe)
    args.data_dir = recipe.get("data_dir", args.data_dir)
    py = sys.executable
    run_dir = ROOT / args.runs_dir / (Path(args.recipe).stem if args.recipe else args.task)
    logs, eval_dir = run_dir / "logs", run_dir / "eval"
    times_path = run_dir / "times.json"
    run_dir.mkdir(parents=True, exist_ok=True)
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    train_steps = int(recipe["train"]["steps"])
    for stage in stages:
        if stage == "data":
            cmd = [py, "-m", "gato.collect", "--task", args.task, "--data-dir", args.data_dir]
            times["data"] = run("data", cmd + flags(recipe["data"]), logs, args.threads)
        elif stage == "train":
            from gato.checkpoint import list_checkpoints

            done = [
                p for p in list_checkpoints(run_dir / "train") if p.name == f"step_{train_steps}"
            ]
            if done:
                print(f"ladder: train: {done[0]} exists, skipped", flush=True)
                continue
            resume = ["--resume"] if list_checkpoints(run_dir / "train") else []
            cmd = [py, "-m", "gato.train", "--tasks", args.task, "--data-dir", args.data_dir]
            cmd += ["--run-dir", str(run_dir / "train"), *resume, *flags(recipe["train"])]
            times["train"] = times.get("train", 0.0) + run("train", cmd, logs, args.threads)
        elif stage == "eval":
            cmd = [py, "-m", "gato.evaluate", "--checkpoint", str(run_dir / "train")]
            cmd += ["--tasks", args.task, "--data-dir", args.data_dir, "--out", str(eval_dir)]
            cmd += ["--threads", "1", "--no-progress", *flags(recipe["eval"])]
            times["eval"] = run("eval", cmd, logs, args.threads)
        elif stage == "report":
            write_report(args, recipe, json.loads((eval_dir / "eval.json").read_text()), times)
        times_path.write_text(json.dumps(times, indent=1) + "\n")
    return 0


def write_report(args: LadderArgs, recipe: dict, report: dict, times: dict) -> None:
    """Add (or replace) this task's row of the ladder table."""
    row = report["tasks"][0]
    name = Path(args.recipe).stem if args.recipe else args.task  # a variant keeps its own row
    goal = recipe["goal"]
    value = row.get(goal["metric"])
    reached = value is not None and value >= goal["at_least"]
    t = recipe["train"]
    cell = "n/a" if value is None else f"{100 * value:.1f}%"
    line = (
        f"| {name} | {100 * goal['at_least']:.0f}% {METRICS[goal['metric']]} | {cell} | "
        f"{'yes' if reached else 'no'} | {_pct(row.get('success_rate'))} | "
        f"{_pct(row.get('normalized_score'))} | {row['episodes']} | {report['policy']} | "
        f"{t.get('size', 'small')}, {recipe['data'].get('episodes')} episodes, {t['steps']} steps "
        f"of {t.get('batch_size')}x{t.get('seq_len')}, lr {t.get('lr')}{_extras(recipe)} | "
        f"{times.get('train', 0) / 60:.1f} min | {times.get('eval', 0) / 60:.1f} min |"
    )
    path = ROOT / args.results
    # The file's first writer names it: the ladder itself, or a table of variants.
    title, about = ("The single-task ladder", "recipes in experiments/presets/ladder/")
    if args.recipe:
        title = "Variants of the single-task ladder"
        about = f"each row is the recipe {Path(args.recipe).parent}/<row name>.json"
    intro = [
        f"# {title}",
        "",
        "One `small` Gato per task, trained on that task alone, scored by rollouts "
        f"(`make ladder TASK=...`, experiments/ladder.py; {about}).",
        "",
    ]
    columns = [
        "| task | goal | reached | met | success | normalized | rollouts | policy | recipe "
        "| training | evaluation |",
        "|---|---|---:|---|---:|---:|---:|---|---|---:|---:|",
    ]
    rows, notes = [], []
    if path.is_file():
        text = path.read_text().splitlines()
        table = [i for i, r in enumerate(text) if r.startswith("|")]
        intro = text[: table[0]] if table else intro
        rows = [r for r in text[table[2] :] if r.startswith("| ")] if len(table) > 2 else []
        rows = [r for r in rows if not r.startswith(f"| {name} |")]
        notes = text[table[-1] + 1 :] if table else []  # what follows the table is kept
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(intro + columns + sorted(rows + [line]) + notes) + "\n")
    print(f"ladder: {name}: {cell} against a goal of {100 * goal['at_least']:.0f}%; {path}")


def _extras(recipe: dict) -> str:
    """What a recipe changes beyond size, data volume and schedule, for its table cell."""
    data, train = recipe["data"], recipe["train"]
    extras = []
    if data.get("noise"):
        extras.append(f"DART sigma {data['noise']}")
    if data.get("epsilon"):
        extras.append(f"epsilon {data['epsilon']}")
    if train.get("bin_init"):
        extras.append(f"{train['bin_init']} bin init")
    if train.get("window_steps"):
        steps = train["window_steps"]
        extras.append(f"packed windows of {steps} timestep{'s' if steps > 1 else ''}")
    if train.get("prompt_prob") == 0:
        extras.append("no prompts")
    return "".join(f", {e}" for e in extras)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


if __name__ == "__main__":
    from gato.errors import run_command  # a bad recipe or flag: one line, exit 2

    sys.exit(run_command(main, prog="python experiments/ladder.py"))
