"""The paper's Figure 9 as one command: fine-tuning from pretrained weights vs from scratch.

    python experiments/fig9.py --ckpt runs/X --task cartpole.swingup --demos 1,10,100 --seeds 2 \\
        --steps 1000 --eval-every 200 --eval-episodes 10 [--collect] [gato.finetune flags ...]

For each demonstration budget and seed, `gato.finetune` runs twice: from the --ckpt weights and
from fresh weights of the same architecture (without --ckpt: only from scratch, of --size). Each
run's score is its best evaluation (the paper: "evaluate with rollouts every few hundred steps
and report the best"); the figure plots it against the number of demonstrations (log x), the mean
over seeds with the min-max spread. Written to --out: fig9_<task>.md (table), .png and .json.

Budgets larger than the filtered demonstrations in --data-dir are skipped with a message (listed
in the outputs) unless --collect is given, which collects more expert episodes into --data-dir
first: the data folder is only written when asked. --no-scratch and --no-pretrained split the
sweep between two processes (two cores); a last run without them reuses both halves. Runs live
in --runs-dir/<task>/<init>-d<N>-s<S>; a finished run (its finetune.json marked complete) is
reused, so a stopped sweep picks up where it stopped. The task should be held out of the
--ckpt's pretraining: gato.finetune refuses a task the checkpoint was trained on, unless --force
(then the outputs say the task was not held out). Flags this script does not know are passed
to every `python -m gato.finetune` run (e.g. --batch-size 16 --lr 1e-4 --eval-workers 1);
see `python -m gato.finetune --help`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain script: import this checkout's gato

import numpy as np  # noqa: E402

from gato import finetune as FT  # noqa: E402
from gato.finetune_args import parse_args as finetune_args  # noqa: E402

INITS = ("pretrained", "scratch")


@dataclass
class Fig9Args:
    """Options of ``python experiments/fig9.py`` (others go to gato.finetune)."""

    task: str = "cartpole.swingup"
    """held-out task"""
    ckpt: str = ""
    """pretrained checkpoint or run folder (empty: only from-scratch runs, of --size)"""
    size: str = "tiny"
    """model size of the from-scratch runs when there is no --ckpt"""
    demos: str = "1,10,100"
    """comma-separated demonstration budgets"""
    seeds: int = 2
    """seeds per budget and initialization (0, 1, ...)"""
    steps: int = 0
    """fine-tuning steps per run (0: gato.finetune's default or --preset's; the paper: 10,000)"""
    eval_every: int = 0
    """steps between rollout evaluations (0: gato.finetune's default or --preset's)"""
    eval_episodes: int = 0
    """rollouts per evaluation (0: gato.finetune's default or --preset's)"""
    data_dir: str = "data"
    """collected data"""
    collect: bool = False
    """collect more expert episodes when a budget exceeds the filtered ones (else: skip it)"""
    runs_dir: str = "runs/fig9"
    """where the fine-tuning runs go"""
    out: str = "experiments/results"
    """where the table, figure and JSON go"""
    no_scratch: bool = False
    """only the pretrained runs"""
    no_pretrained: bool = False
    """only the from-scratch runs (e.g. in a second process beside a --no-scratch one)"""
    force: bool = False
    """fine-tune even if --ckpt was pretrained on --task (gato.finetune --force); the task is
    then not held out, and the table and JSON say so"""


def parse(argv=None) -> tuple[Fig9Args, list[str]]:
    from gato.cli import dataclass_parser

    parser = dataclass_parser(Fig9Args, "python experiments/fig9.py", __doc__)
    known, rest = parser.parse_known_args(argv)
    values = vars(known)
    values.pop("_debug", None)  # every dataclass parser has --debug (gato.errors.run_command)
    args = Fig9Args(**values)
    if not args.ckpt and args.no_scratch:
        parser.error("--no-scratch needs --ckpt: there would be nothing to run")
    if args.no_scratch and args.no_pretrained:
        parser.error("--no-scratch with --no-pretrained leaves nothing to run")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args, rest


def budgets(text: str) -> list[int]:
    out = sorted({int(x) for x in text.split(",") if x.strip()})
    if not out or out[0] < 1:
        raise SystemExit(f"--demos must list positive integers, got {text!r}")
    return out


def run_dir_of(args: Fig9Args, init: str, demos: int, seed: int) -> Path:
    return Path(args.runs_dir) / args.task / f"{init}-d{demos}-s{seed}"


def finetune_argv(args: Fig9Args, rest: list[str], init: str, demos: int, seed: int) -> list[str]:
    """The `python -m gato.finetune` arguments of one run."""
    run_dir = run_dir_of(args, init, demos, seed)
    argv = [
        *rest,
        *("--task", args.task, "--demos", str(demos), "--seed", str(seed)),
        *("--data-dir", args.data_dir, "--run-dir", str(run_dir), "--size", args.size),
    ]
    for name in ("steps", "eval_every", "eval_episodes"):  # 0: leave it to gato.finetune
        if getattr(args, name):
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    argv += ["--ckpt", args.ckpt] if args.ckpt else []
    argv += ["--scratch"] if init == "scratch" else []
    return argv + (["--force"] if args.force else [])


def pretrained_on_task(args: Fig9Args) -> bool:
    """Whether the --ckpt checkpoint was trained on --task (then the task is not held out)."""
    if not args.ckpt:
        return False
    from gato.checkpoint import STATE_FILE, resolve_checkpoint
    from gato.finetune_args import pretrained_tasks

    state = json.loads((resolve_checkpoint(args.ckpt) / STATE_FILE).read_text())
    return args.task in pretrained_tasks(state)


def run_one(args: Fig9Args, rest: list[str], init: str, demos: int, seed: int) -> dict:
    """One fine-tuning run, or the stored result of a finished one with the same settings."""
    from dataclasses import asdict

    run_dir = run_dir_of(args, init, demos, seed)
    options = finetune_args(finetune_argv(args, rest, init, demos, seed))
    done = run_dir / FT.RESULT_NAME
    if done.is_file() and (stored := json.loads(done.read_text())).get("complete"):
        diff = sorted(k for k, v in asdict(options).items() if stored["finetune_args"].get(k) != v)
        if diff:
            raise SystemExit(
                f"{run_dir} holds a finished run with other settings ({', '.join(diff)}): "
                "choose another --runs-dir or delete it"
            )
        print(f"fig9: reusing {run_dir}", flush=True)
        return stored
    if run_dir.exists():  # an interrupted run: start it again from the beginning
        import shutil

        shutil.rmtree(run_dir)
    print(f"fig9: {init}, {demos} demonstrations, seed {seed} -> {run_dir}", flush=True)
    return FT.finetune(options)


def summarize(results: dict) -> list[dict]:
    """Per (init, demos): the best normalized score of each seed, mean, min and max."""
    rows = []
    for (init, demos), runs in sorted(results.items()):
        best = [r["best"] for r in runs]
        scores = [b["normalized_score"] for b in best]
        scored = all(s is not None for s in scores)
        values = np.asarray(scores if scored else [b["mean_return"] for b in best], np.float64)
        rows.append(
            {
                "init": init,
                "demos": demos,
                "seeds": len(runs),
                "metric": "normalized_score" if scored else "mean_return",
                "values": values.tolist(),
                "best_steps": [b["step"] for b in best],
                "mean": float(values.mean()),
                "std": float(values.std()),
                "min": float(values.min()),
                "max": float(values.max()),
            }
        )
    return rows


def markdown(
    args: Fig9Args, rows: list[dict], skipped: list[str], config: dict, ft: dict, held_out=True
) -> str:
    def fmt(r):
        if r["metric"] == "normalized_score":
            return f"{100 * r['mean']:.1f}% ± {100 * r['std']:.1f} ({r['seeds']} seeds)"
        return f"return {r['mean']:.1f} ± {r['std']:.1f} ({r['seeds']} seeds)"

    by = {(r["init"], r["demos"]): r for r in rows}
    inits = [i for i in INITS if any(r["init"] == i for r in rows)]
    lines = [
        f"# Figure 9: fine-tuning on `{args.task}`",
        "",
        f"Pretrained checkpoint: `{args.ckpt or 'none'}`; model {config.get('n_layer')} layers x "
        f"{config.get('d_model')} wide; {ft['steps']} steps of {ft['batch_size']} sequences at "
        f"learning rate {ft['lr']:g}, evaluation every {ft['eval_every']} steps with "
        f"{ft['eval_episodes']} rollouts; score = the best evaluation of each run "
        "(expert-normalized: 0% = random policy, 100% = expert), mean ± std over seeds.",
        "",
    ]
    if not held_out:
        lines += [
            f"**Not held out**: the checkpoint was pretrained on `{args.task}` (fine-tuned with "
            "--force), so this does not measure adaptation to a new task.",
            "",
        ]
    lines += [
        "| demonstrations | " + " | ".join(inits) + " | best steps |",
        "|---:|" + "---:|" * len(inits) + "---|",
    ]
    for demos in sorted({r["demos"] for r in rows}):
        cells = [fmt(by[(i, demos)]) if (i, demos) in by else "-" for i in inits]
        steps = "; ".join(f"{i}: {by[(i, demos)]['best_steps']}" for i in inits if (i, demos) in by)
        lines.append(f"| {demos} | " + " | ".join(cells) + f" | {steps} |")
    if skipped:
        lines += ["", "Skipped budgets (fewer filtered demonstrations than asked; --collect):"]
        lines += [f"- {s}" for s in skipped]
    return "\n".join(lines) + "\n"


def plot(args: Fig9Args, rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    scale = 100 if rows and rows[0]["metric"] == "normalized_score" else 1
    for init, colour in zip(INITS, ("tab:blue", "tab:orange"), strict=True):
        mine = [r for r in rows if r["init"] == init]
        if not mine:
            continue
        x = [r["demos"] for r in mine]
        ax.plot(x, [scale * r["mean"] for r in mine], marker="o", color=colour, label=init)
        ax.fill_between(x, [scale * r["min"] for r in mine], [scale * r["max"] for r in mine],
                        color=colour, alpha=0.2)  # fmt: skip
        for r in mine:
            ax.scatter([r["demos"]] * len(r["values"]), [scale * v for v in r["values"]],
                       color=colour, s=10, alpha=0.6)  # fmt: skip
    ax.set_xscale("log")
    budgets_run = sorted({r["demos"] for r in rows})
    ax.set_xticks(budgets_run, [str(d) for d in budgets_run])
    ax.minorticks_off()
    ax.set_xlabel("number of demonstrations (fine-tuning episodes)")
    ax.set_ylabel("best expert-normalized score (%)" if scale == 100 else "best mean return")
    ax.set_title(f"{args.task}: pretrained vs scratch (mean, min-max over seeds)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> dict:
    args, rest = parse(argv)
    from gato.envs import canonical_name

    args.task = canonical_name(args.task)
    inits = [i for i in INITS if (i != "pretrained" or args.ckpt)]
    inits = [i for i in inits if not (i == "scratch" and args.no_scratch)]
    inits = [i for i in inits if not (i == "pretrained" and args.no_pretrained)]
    results, skipped, config, ft = {}, [], {}, {}
    start = time.time()
    held_out = not pretrained_on_task(args)
    for demos in budgets(args.demos):
        try:
            FT.ensure_demos(args.task, args.data_dir, demos, args.collect)
        except FT.DemoError as e:
            print(f"fig9: skipping {demos} demonstrations: {e}", flush=True)
            skipped.append(f"{demos}: {e}")
            continue
        for seed in range(args.seeds):
            for init in inits:
                result = run_one(args, rest, init, demos, seed)
                results.setdefault((init, demos), []).append(result)
                config, ft = result["config"], result["finetune_args"]
    if not results:
        raise SystemExit("fig9: nothing ran (every budget was skipped)")
    rows = summarize(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"fig9_{args.task}"
    report = {
        "task": args.task,
        "ckpt": args.ckpt or None,
        "held_out": held_out,
        "args": vars(args),
        "finetune_flags": rest,
        "config": config,
        "finetune_args": ft,
        "rows": rows,
        "skipped": skipped,
        "runs": {f"{i}-d{d}": [r["best"] for r in rs] for (i, d), rs in sorted(results.items())},
        "seconds": round(time.time() - start, 1),
    }
    Path(f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    md = markdown(args, rows, skipped, config, ft, held_out)
    Path(f"{stem}.md").write_text(md)
    plot(args, rows, Path(f"{stem}.png"))
    print(md)
    print(f"wrote {stem}.md, {stem}.png, {stem}.json")
    return report


if __name__ == "__main__":
    main()
