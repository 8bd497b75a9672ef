"""The report files of `python -m gato.evaluate`: eval.md (markdown) and eval.png (a plot).

A report (gato/evaluate.py's eval.json) holds the control tasks' rows (`tasks`, `aggregate`)
and, when vision-language or text tasks were evaluated, their metrics beside their baselines
(`language`, gato/evaluate_vl.py). Both files show whichever parts the report has.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

THRESHOLDS = (0.5, 0.8)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown_report(report: Mapping) -> str:
    """The per-task table, the per-domain means and the 50% / 80% shares as markdown, then the
    vision-language and text metrics if the report has them."""
    lines = [f"# Evaluation of `{report['checkpoint']}`", ""]
    if report["tasks"]:
        lines += _control_lines(report)
    if report.get("language"):
        from gato.evaluate_vl import language_markdown

        lines += [language_markdown(report["language"]), ""]
    return "\n".join(lines)


def _control_lines(report: Mapping) -> list[str]:
    agg = report["aggregate"]
    lines = [
        f"{report['episodes']} rollouts per task, {report['policy']}; normalized score: "
        "0% = uniformly random policy, 100% = expert.",
        "",
        "| task | domain | rollouts | mean return | std | normalized | success |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["tasks"]:
        lines.append(
            f"| {r['task']} | {r['family']} | {r['episodes']} | {r['mean_return']:.3f} | "
            f"{r['std_return']:.3f} | {_pct(r['normalized_score'])} | {_pct(r['success_rate'])} |"
        )
    lines += ["", "| domain | tasks | mean normalized |", "|---|---:|---:|"]
    for fam, v in agg["per_family"].items():
        lines.append(f"| {fam} | {v['tasks']} | {_pct(v['mean_normalized_score'])} |")
    lines += [
        "",
        f"Tasks with a score: {agg['tasks_scored']} of {agg['tasks']}; mean "
        f"{_pct(agg['mean_normalized_score'])}, median {_pct(agg['median_normalized_score'])}; "
        f"at or above 50% of expert: {_pct(agg['share_above_50'])}; at or above 80%: "
        f"{_pct(agg['share_above_80'])}.",
        "",
    ]
    return lines


def _checkpoint_name(report: Mapping) -> str:
    ckpt = Path(report["checkpoint"])
    return f"{ckpt.parent.parent.name}/{ckpt.name}" if ckpt.parent.name == "checkpoints" else ckpt


def plot_report(report: Mapping, path: str | Path) -> Path:
    """A bar chart of the normalized score per task, coloured by domain, with 50%/80% lines;
    beside it, if the report has them, the language metrics against their baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gato.evaluate_vl import language_panels, plot_language

    rows, language = report["tasks"], report.get("language") or {}
    panels = language_panels(language)
    widths = ([max(3.0, 0.6 * len(rows) + 2)] if rows else []) + [w for _, w in panels]
    fig, axes = plt.subplots(
        1, len(widths), figsize=(sum(widths), 4.5), width_ratios=widths, squeeze=False
    )
    axes = list(axes[0])
    if rows:
        _plot_scores(axes.pop(0), report, plt)
    if panels:
        plot_language(axes, language, [kind for kind, _ in panels])
    fig.suptitle(f"{_checkpoint_name(report)}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_scores(ax, report: Mapping, plt) -> None:
    rows = report["tasks"]
    families = sorted({r["family"] for r in rows})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    values = [100 * (r["normalized_score"] or 0.0) for r in rows]
    ax.bar(range(len(rows)), values, color=[colours[r["family"]] for r in rows])
    for t in THRESHOLDS:
        ax.axhline(100 * t, color="grey", linestyle="--", linewidth=0.8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(rows)), [r["task"] for r in rows], rotation=45, ha="right")
    ax.set_ylabel("expert-normalized score (%)")
    ax.set_title(f"{report['episodes']} rollouts per task")
    for i, r in enumerate(rows):
        if r["normalized_score"] is None:
            ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[f]) for f in families]
    ax.legend(handles, families, fontsize=8)
