"""The report stage of experiments/cpu_proof.py: the prompt-conditioning ablation (table and plot)
and the run facts (model size, data sizes, wall times), from the files the other stages wrote.

    python experiments/cpu_proof.py --stages report

Writes <out>/ablation.md, ablation.png, facts.json, each pretraining run's loss curve and, with
--before, before-after.md: an earlier proof's prompted scores beside this one's.
"""

from __future__ import annotations

import json
from pathlib import Path

from gato.evaluate import _pct  # the evaluation report's percentage format, shared

LABELS = {
    "prompted": "trained with prompts, evaluated prompted",
    "prompted-unprompted": "trained with prompts, evaluated without",
    "noprompt": "trained without prompts (--prompt-prob 0), evaluated without",
}


def load_evals(out: Path) -> dict[str, dict]:
    found = {name: out / f"eval-{name}" / "eval.json" for name in LABELS}
    return {name: json.loads(p.read_text()) for name, p in found.items() if p.is_file()}


def ablation_markdown(evals: dict[str, dict]) -> str:
    names = list(evals)
    tasks = [row["task"] for row in evals[names[0]]["tasks"]]
    by = {n: {row["task"]: row for row in e["tasks"]} for n, e in evals.items()}
    lines = [
        "| task | " + " | ".join(LABELS[n] for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for task in tasks:
        cells = [_pct(by[n][task]["normalized_score"]) if task in by[n] else "-" for n in names]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    families = sorted({f for e in evals.values() for f in e["aggregate"]["per_family"]})
    for fam in families:
        cells = [_pct(evals[n]["aggregate"]["per_family"].get(fam, {}).get("mean_normalized_score"))
                 for n in names]  # fmt: skip
        lines.append(f"| **mean, {fam}** | " + " | ".join(cells) + " |")
    for key, label in (("mean_normalized_score", "mean, all tasks"),
                       ("share_above_50", "share of tasks at or above 50%"),
                       ("share_above_80", "share of tasks at or above 80%")):  # fmt: skip
        cells = [_pct(evals[n]["aggregate"][key]) for n in names]
        lines.append(f"| **{label}** | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


VECTOR_FAMILIES = ("dmc", "metaworld", "mujoco")  # the vector-observation tasks


def proof_goal(report: dict) -> dict:
    """Issue 12's goal on one evaluation: at least 80% of expert on at least three quarters of
    the vector-observation tasks and at least 50% on every one."""
    scores = {r["task"]: r["normalized_score"] for r in report["tasks"]
              if r["family"] in VECTOR_FAMILIES}  # fmt: skip
    above_80 = [t for t, v in scores.items() if v is not None and v >= 0.8]
    below_50 = [t for t, v in scores.items() if v is None or v < 0.5]
    share = len(above_80) / len(scores) if scores else 0.0
    return {"vector_tasks": len(scores), "at_least_80": above_80, "below_50": below_50,
            "met": bool(scores) and share >= 0.75 and not below_50}  # fmt: skip


def before_after_markdown(before: dict, after: dict) -> str:
    """One row per task: the earlier run's prompted evaluation against this one's."""
    old = {r["task"]: r for r in before["tasks"]}
    lines = [
        "| task | before: normalized | before: success | after: normalized | after: success "
        "| after: decoding |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in after["tasks"]:
        b = old.get(r["task"], {})
        lines.append(
            f"| {r['task']} | {_pct(b.get('normalized_score'))} | {_pct(b.get('success_rate'))} "
            f"| {_pct(r['normalized_score'])} | {_pct(r['success_rate'])} "
            f"| {r.get('decoding', '-')} |"
        )
    for key, label in (("mean_normalized_score", "mean, all tasks"),
                       ("share_above_50", "share of tasks at or above 50%"),
                       ("share_above_80", "share of tasks at or above 80%")):  # fmt: skip
        lines.append(f"| **{label}** | {_pct(before['aggregate'][key])} | | "
                     f"{_pct(after['aggregate'][key])} | | |")  # fmt: skip
    goal = proof_goal(after)
    lines += [
        "",
        f"Goal (80% of expert on three quarters of the {goal['vector_tasks']} vector-observation "
        f"tasks, 50% on every one): {'met' if goal['met'] else 'not met'}; at or above 80%: "
        f"{', '.join(goal['at_least_80']) or 'none'}; below 50%: "
        f"{', '.join(goal['below_50']) or 'none'}.",
    ]
    return "\n".join(lines) + "\n"


def ablation_plot(evals: dict[str, dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(evals)
    tasks = [row["task"] for row in evals[names[0]]["tasks"]]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for i, name in enumerate(names):
        scores = {row["task"]: row["normalized_score"] for row in evals[name]["tasks"]}
        ys = [100 * (scores.get(t) or 0.0) for t in tasks]
        ax.bar(np.arange(len(tasks)) + (i - (len(names) - 1) / 2) * width, ys, width,
               label=LABELS[name])  # fmt: skip
    for level in (50, 80):
        ax.axhline(level, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(tasks)), tasks, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("expert-normalized score (%)")
    ax.set_title("Prompt-conditioning ablation: one checkpoint per pretraining run, "
                 f"{evals[names[0]]['episodes']} rollouts per task", fontsize=10)  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def data_sizes(data_dir: Path, tasks: list[str]) -> list[dict]:
    """Episodes, agent steps and bytes on disk per collected task."""
    rows = []
    for task in tasks:
        folder = data_dir / task
        meta = json.loads((folder / "metadata.json").read_text())
        steps = meta.get("lengths") or []
        rows.append(
            {
                "task": task,
                "episodes": meta["episodes"],
                "steps": int(sum(steps)) if steps else None,
                "bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
                "expert_return": meta.get("expert_return"),
            }
        )
    return rows


def model_facts(run: Path) -> dict:
    from gato.checkpoint import list_checkpoints, load_checkpoint
    from gato.model import Gato

    ckpt = load_checkpoint(list_checkpoints(run)[-1], False)
    model = Gato(ckpt.config)
    return {"step": ckpt.step, "parameters": model.num_params(),
            "parameters_without_tables": model.num_params(non_embedding=True),
            "config": ckpt.config.__dict__}  # fmt: skip


def pretraining_facts(run: Path) -> dict:
    """The last validation losses (per domain) and training loss of a run, from metrics.csv."""
    from gato.train_log import read_metrics

    rows = read_metrics(run / "metrics.csv")
    val = [r for r in rows if "val_loss" in r]
    train = [r for r in rows if "loss" in r]
    from gato.checkpoint import list_checkpoints, load_checkpoint

    last = list_checkpoints(run)[-1]
    return {
        "step": int(last.name.split("_")[-1]),
        # the training steps' own time, summed over every start of the run (no evals, no saves)
        "train_seconds": round(float(load_checkpoint(last, False).state["train_seconds"]), 1),
        # args.json is rewritten at every start: the wall time since the last (re)start
        "wall_seconds_since_last_start": round(
            last.stat().st_mtime - (run / "args.json").stat().st_mtime, 1
        ),
        "last_val": {k: v for k, v in val[-1].items() if k.startswith("val_loss") or k == "step"}
        if val
        else None,
        "last_train_loss": train[-1]["loss"],
        "median_tokens_per_s": sorted(float(r["tokens_per_s"]) for r in train)[len(train) // 2],
    }


def write_report(args) -> None:
    out, runs = Path(args.out), Path(args.runs_dir)
    out.mkdir(parents=True, exist_ok=True)
    evals = load_evals(out)
    if evals:
        (out / "ablation.md").write_text(ablation_markdown(evals))
        ablation_plot(evals, out / "ablation.png")
        print((out / "ablation.md").read_text())
    before = Path(args.before) / "eval-prompted" / "eval.json" if args.before else None
    if before and before.is_file() and "prompted" in evals:
        table = before_after_markdown(json.loads(before.read_text()), evals["prompted"])
        (out / "before-after.md").write_text(table)
        print(table)
    import shutil

    pretraining = {}
    for name in ("prompted", "noprompt"):
        run = runs / f"pretrain-{name}"
        if not (run / "loss.png").is_file():  # a run not finished (its curve comes at the end)
            print(f"cpu_proof: {run} has not finished: its facts and curve are left out")
            continue
        shutil.copyfile(run / "loss.png", out / f"pretrain-{name}-loss.png")
        pretraining[name] = pretraining_facts(run)
    preset = json.loads((Path(__file__).resolve().parents[1] / args.train_preset).read_text())
    facts = {
        "preset": preset,
        "model": model_facts(runs / "pretrain-prompted"),
        "pretraining": pretraining,
        "pretraining_data": data_sizes(Path(args.data_dir), preset["tasks"].split(",")),
        "fig9_data": data_sizes(Path(args.data_dir), [args.fig9_task]),
        "eval_seconds": {name: e["seconds"] for name, e in evals.items()},
        "finetune_seconds": {
            p.parent.name: json.loads(p.read_text()).get("seconds")
            for p in sorted((runs / "fig9" / args.fig9_task).glob("*/finetune.json"))
        },
    }
    (out / "facts.json").write_text(json.dumps(facts, indent=1, default=str) + "\n")
    print(f"wrote {out}/ablation.md, ablation.png, facts.json")
