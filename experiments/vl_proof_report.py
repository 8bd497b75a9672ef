"""The results table of experiments/vl_proof.py (its report stage): experiments/results/vl-proof.md.

One column per run (joint, control, language), one row per metric: each control task's
expert-normalized score and their mean, then caption exact match and token F1, VQA accuracy
overall and per question type, and text bits per byte, with the baseline beside them (the same
for every run: it is fitted on the train splits, not on a model). A run not trained on a task
reads "not trained"; a run not evaluated yet reads "not run".
"""

from __future__ import annotations

import json
from pathlib import Path

RUN_TITLES = {
    "joint": "joint (control + vl + text)",
    "control": "control only",
    "language": "language only (vl + text)",
}


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def load_reports(args, runs) -> dict[str, dict]:
    """The eval.json of each run that has one."""
    out = {}
    for name in runs:
        path = Path(args.out) / f"eval-{name}" / "eval.json"
        if path.is_file():
            out[name] = json.loads(path.read_text())
    return out


def metric_rows(reports: dict[str, dict], runs, control_tasks) -> list[list[str]]:
    """[metric, one cell per run, baseline] rows (module docstring)."""

    def cell(name, get, fmt, trained: bool):
        if name not in reports:
            return "not run"
        return fmt(get(reports[name])) if trained else "not trained"

    def score(report, task):
        return {r["task"]: r for r in report["tasks"]}.get(task, {}).get("normalized_score")

    lines = []
    for task in control_tasks:
        cells = [cell(n, lambda rep, t=task: score(rep, t), _pct, n != "language") for n in runs]
        lines.append([f"{task}: normalized score", *cells, "0% (random policy)"])
    if control_tasks:
        get = lambda rep: rep["aggregate"].get("mean_normalized_score")  # noqa: E731
        cells = [cell(n, get, _pct, n != "language") for n in runs]
        lines.append(["control: mean normalized score", *cells, "0%"])
    language = [reports[n]["language"] for n in runs if n in reports and "language" in reports[n]]
    if not language:
        return lines
    from gato.evaluate_vl import language_rows

    def value(rep, metric):  # the same examples in every run, so the same metric names
        return {m: v for m, v, *_ in language_rows(rep.get("language") or {})}.get(metric)

    for metric, _, base, base_name in language_rows(language[0]):
        cells = [cell(n, lambda rep, m=metric: value(rep, m), _num, n != "control") for n in runs]
        lines.append([metric, *cells, f"{_num(base)} ({base_name})"])
    return lines


def write_report(args, preset: dict, times: dict) -> Path:
    """Write the results table to args.results; its path."""
    from vl_proof import RUNS, run_tasks  # the sibling script, on sys.path

    reports = load_reports(args, RUNS)
    control = [t for t in preset["control_tasks"].split(",") if t]
    t, e = preset["train"], preset["eval"]
    tokens = int(t["steps"]) * int(t["batch_size"]) * int(t["seq_len"])
    status = (
        "Measured with the committed code."
        if len(reports) == len(RUNS)
        else f"**Not run yet**: {len(reports)} of {len(RUNS)} runs are evaluated."
    )
    lines = [
        "# Vision-language and text beside control: one budget, three task lists (issue 14)",
        "",
        f"`make vl-proof` (experiments/vl_proof.py, recipe `{args.recipe}`). {status}",
        "",
        f"- Recipe: {preset.get('comment', '')}",
        f"- Budget of every run: the `{t.get('size', 'small')}` size, {t['steps']} steps of "
        f"{t['batch_size']} x {t['seq_len']} tokens ({tokens:,} tokens), peak learning "
        f"rate {t.get('lr')}, the same seed; mixture by the default family weights.",
    ]
    for name in RUNS:
        lines.append(f"- {RUN_TITLES[name]}: `{run_tasks(preset)[name]}`")
    lines += [
        f"- Evaluation (gato.evaluate): {e.get('episodes', 50)} prompted rollouts per control "
        f"task; {e.get('vl_examples', 200)} held-out generated scenes (test ids, never trained "
        "on), captions and questions, greedy; the corpus's held-out documents in bits per byte.",
        "- Baselines: the random policy (0%) for control, the commonest train caption, the "
        "majority answer per question type (train split), the unigram text model (train split).",
        "",
        "| metric | " + " | ".join(RUN_TITLES[n] for n in RUNS) + " | baseline |",
        "|---|" + "---:|" * len(RUNS) + "---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in metric_rows(reports, RUNS, control)]
    joint = reports.get("joint", {}).get("language", {})
    grid = Path(args.out) / "captions.png"
    if grid.is_file():
        rel = _relative(grid, Path(args.results).parent)
        lines += [
            "",
            "Held-out scenes captioned by the joint checkpoint:",
            "",
            f"![captions]({rel})",
        ]
    for s in (joint.get("text") or {}).get("samples", []):
        prompt, made = s["prompt"].replace("\n", " "), s["generated"].replace("\n", " ")
        lines += ["", f"Joint run, a held-out document continued (greedy): `{prompt}` -> `{made}`"]
    lines += ["", "Full reports: " + ", ".join(
        f"[{n}]({_relative(Path(args.out) / f'eval-{n}' / 'eval.md', Path(args.results).parent)})"
        for n in reports
    ) if reports else "Full reports: none yet."]  # fmt: skip
    lines += ["", "| stage | wall time | per command |", "|---|---:|---|"]
    for stage, v in times.items():
        per = ", ".join(f"{k} {s / 60:.1f} min" for k, s in v.get("commands", {}).items())
        lines.append(f"| {stage} | {v['seconds'] / 60:.1f} min | {per} |")
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())
