"""`python -m gato.finetune`: fine-tune on a few demonstrations of a held-out task (spec 8, 9).

    python -m gato.finetune --task cartpole.swingup --demos 10 --ckpt runs/tiny-XXXX
    python -m gato.finetune --task cartpole.swingup --demos 10 --scratch --size tiny
    python -m gato.finetune --task cartpole.swingup --demos 10 --ckpt runs/X --scratch  # same size

The paper's protocol (its Figure 9): train on the first N expert episodes of a task held out from
pretraining, with a constant learning rate of 1e-5, batch 64, dropout 0.1, for about 10,000 steps;
evaluate by rollouts every few hundred steps and report the best. This is gato.train's loop
(gato/train.py: sampler, exact loss reduction, DDP/FSDP, CSV/TensorBoard logs) with three changes
made through its hooks: the model starts from the pretrained weights (or fresh ones), the data is
only the demonstration budget, and "evaluation" is rollouts instead of a validation loss.

Data (gato/finetune_demos.py): the first --demos episodes by episode index among those passing
the 80% filter. They are exposed to the sampler through `<run>/demos/<task>/`, a view of the data
folder (a metadata copy listing only them, and links to the shards that hold them), so nothing
else can leak in and the run records exactly what it saw. No episode is held out for a
validation loss: the budget is all training data. Too few filtered episodes is an error naming
the collect command, or, with --collect, more are collected first (which also recomputes the
expert return and the filter).

Prompts: like pretraining, a share of rows (--prompt-prob) is prompted with *another*
demonstration of the task. With --demos 1 there is no other one, so no row has a prompt; the
rollouts are then unprompted too (a prompt the model never saw in fine-tuning would only be noise).
Otherwise each rollout is prompted as gato.evaluate does, but only with the budget's own
demonstrations, best first, rollout i with demonstration i mod N.

Evaluation at step 0 (the starting point), every --eval-every steps and at the end: the model is
written to `<run>/eval/` and rolled out --eval-episodes times in --eval-workers processes (gato/
evaluate.py). Every evaluation uses the same seeds, so scores differ by the weights, not by luck
of the draw; taking the best of several is optimistic, as in the paper. The best evaluation's
weights are kept as `<run>/best/` (a run folder: `python -m gato.evaluate --checkpoint
<run>/best`). Results: `<run>/finetune.json` (best score and step, the whole curve), `eval.csv`,
`metrics.csv` (train loss and eval/* columns), and `finetune.png` (score and loss vs step).
"""

from __future__ import annotations

import csv
import dataclasses
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from gato import distributed as D
from gato.checkpoint import (
    CheckpointError,
    _is_tied_alias,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from gato.config import SIZES, GatoConfig
from gato.data import DataConfig
from gato.datasets import write_json_atomic
from gato.errors import UserError, run_command
from gato.finetune_args import (
    FinetuneArgs,
    HeldOutError,
    check_held_out,
    parse_args,
    to_train_args,
)
from gato.finetune_demos import (  # noqa: F401 (re-exported: fig9, tests)
    DemoError,
    demo_view,
    ensure_demos,
    suggest_episodes,
)
from gato.layout_check import LayoutError
from gato.locks import run_folder_lock
from gato.model import Gato
from gato.train import Trainer
from gato.train_log import read_metrics

RESULT_NAME = "finetune.json"
PLOT_NAME = "finetune.png"
EVAL_CSV = "eval.csv"


# ------------------------------------------------------------------------------- trainer


class FinetuneTrainer(Trainer):
    """gato.train's Trainer on a demonstration budget, from given weights, evaluated by rollouts."""

    def __init__(self, train_args, world, ft: FinetuneArgs, base: GatoConfig | None, init_state):
        # The hooks below run inside Trainer.__init__, so what they read is set first.
        self.ft, self.base, self.init_state = ft, base, init_state
        self.history: list[dict] = []
        self.best: dict | None = None
        self.prompts: list = []
        super().__init__(train_args, world)
        self.prompted = ft.demos >= 2 and ft.prompt_prob > 0  # see the module docstring

    def model_config(self) -> GatoConfig:
        if self.base is None:
            return super().model_config()
        block = self.args.seq_len or self.base.block_size
        return dataclasses.replace(self.base, dropout=self.args.dropout, block_size=block)

    def data_config(self) -> DataConfig:
        return dataclasses.replace(super().data_config(), val_episodes=0)

    def build_model(self) -> Gato:
        model = Gato(self.config)
        if self.init_state is not None:
            missing, unexpected = model.load_state_dict(self.init_state, strict=False)
            missing = [m for m in missing if not _is_tied_alias(model, m)]
            if missing or unexpected:
                raise SystemExit(
                    f"--ckpt {self.ft.ckpt} does not fit its config: missing {missing}, "
                    f"unexpected {unexpected}"
                )
        return model

    def evaluate(self, step: int = 0) -> dict[str, float]:
        metrics = super().evaluate(step)  # {}: no validation split
        model_state = D.full_model_state(self.model)  # a collective: every rank calls it
        row = self._rollouts(step, model_state) if self.world.is_main else None
        row = D.broadcast_object(row, self.world)
        metrics["eval/return"] = row["mean_return"]
        if row["normalized_score"] is not None:
            metrics["eval/score"] = row["normalized_score"]
        if row["success_rate"] is not None:
            metrics["eval/success"] = row["success_rate"]
        return metrics

    def _ckpt_state(self, step: int) -> dict:
        return {
            "tasks": [self.ft.task],
            "args": asdict(self.args),
            "finetune": asdict(self.ft),
            "sampler": self.sampler.state_dict(),
        }

    def _rollouts(self, step: int, model_state: dict) -> dict:
        from gato.envs import get_task
        from gato.evaluate import rollout_jobs, run_rollouts, summarize_task
        from gato.evaluate_workers import PolicyOptions

        ft, info = self.ft, get_task(self.ft.task)
        path = save_checkpoint(
            self.run_dir / "eval", step, model_state, self.config, self._ckpt_state(step), keep=1
        )
        max_steps = ft.eval_max_steps or None
        jobs = rollout_jobs(info.name, self.prompts, ft.eval_episodes, ft.seed, max_steps)
        prompt_tokens = self.config.block_size if self.prompted else 0
        options = PolicyOptions(None, prompt_tokens, ft.greedy, ft.temperature)
        device = ft.eval_device or self.world.device.type
        t0 = time.perf_counter()
        results = run_rollouts(jobs, str(path), options, ft.eval_workers, device, 1, False)
        row = summarize_task(
            info.name, info.family, [r["return"] for r in results], [r["success"] for r in results]
        )
        row = {"step": step, **row, "seconds": round(time.perf_counter() - t0, 1)}
        self.history.append(row)
        if self.best is None or row["mean_return"] > self.best["mean_return"]:
            self.best = row  # ties keep the earlier step
            shutil.rmtree(self.run_dir / "best", ignore_errors=True)
            save_checkpoint(
                self.run_dir / "best", step, model_state, self.config, self._ckpt_state(step)
            )
        score = row["normalized_score"]
        shown = "n/a" if score is None else f"{100 * score:.1f}%"
        print(
            f"\n[eval step {step}] return {row['mean_return']:.1f} +- {row['std_return']:.1f}, "
            f"normalized {shown} ({row['seconds']} s)",
            flush=True,
        )
        self.write_results(done=False)
        return row

    def write_results(self, done: bool, extra: dict | None = None) -> dict:
        """finetune.json and eval.csv (rewritten after every evaluation, so a stopped run has
        its results so far); with done, also finetune.png."""
        result = {
            "task": self.ft.task,
            "demos": self.ft.demos,
            "demo_indices": self.sampler.state_dict()["episodes"][self.ft.task],
            "init": "scratch" if self.init_state is None else "pretrained",
            "ckpt": self.ft.ckpt or None,
            "prompted": self.prompted,
            "config": self.config.to_dict(),
            "finetune_args": asdict(self.ft),
            "complete": done,
            "best": self.best,
            "best_checkpoint": str(self.run_dir / "best"),
            "curve": self.history,
            **(extra or {}),
        }
        write_json_atomic(self.run_dir / RESULT_NAME, result)
        keys = ["step", "mean_return", "std_return", "normalized_score", "success_rate"]
        with open(self.run_dir / EVAL_CSV, "w", newline="") as f:
            writer = csv.DictWriter(f, keys, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.history)
        if done:
            plot_curve(self.history, read_metrics(self.run_dir), self.run_dir / PLOT_NAME, result)
        return result

    def run(self) -> dict:
        # Rank 0's rollouts read the demonstrations only from the budget's view folder.
        if self.world.is_main and self.prompted:
            from gato.envs import get_task
            from gato.prompts import demonstrations, steps_for_tokens, truncate_episode

            info = get_task(self.ft.task)
            demos = demonstrations(info.name, self.args.data_dir, self.ft.demos, self.ft.seed)
            steps = steps_for_tokens(info, self.config.block_size)
            self.prompts = [truncate_episode(d, steps) for d in demos]
        if self.world.is_main:
            print(
                f"gato.finetune: {self.ft.task}, demonstrations "
                f"{self.sampler.state_dict()['episodes'][self.ft.task]}, "
                f"{'pretrained ' + self.ft.ckpt if self.init_state is not None else 'from scratch'}"
                f", rollouts {'prompted' if self.prompted else 'unprompted'}",
                flush=True,
            )
        t0 = time.perf_counter()
        last = super().run()
        result = {}
        if self.world.is_main:
            shutil.rmtree(self.run_dir / "eval", ignore_errors=True)  # `best/` has what matters
            if not self.ft.keep_last:
                shutil.rmtree(self.run_dir / "checkpoints", ignore_errors=True)
            extra = {"final_loss": last.get("loss"), "seconds": round(time.perf_counter() - t0, 1)}
            result = self.write_results(done=True, extra=extra)
            b = self.best
            shown = (
                "n/a" if b["normalized_score"] is None else f"{100 * b['normalized_score']:.1f}%"
            )
            print(
                f"best: step {b['step']}, return {b['mean_return']:.1f}, normalized {shown}; "
                f"{self.run_dir / RESULT_NAME}, {self.run_dir / PLOT_NAME}, "
                f"{self.run_dir / 'best'}",
                flush=True,
            )
        return result


def plot_curve(history: list[dict], rows: list[dict], path: Path, result: dict) -> Path:
    """Normalized score (or raw return) of each evaluation and the train loss, against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    scored = all(h["normalized_score"] is not None for h in history)
    steps = [h["step"] for h in history]
    ys = [100 * h["normalized_score"] if scored else h["mean_return"] for h in history]
    top.plot(steps, ys, marker="o", lw=1.5)
    if result.get("best"):
        b = result["best"]
        top.plot([b["step"]], [100 * b["normalized_score"] if scored else b["mean_return"]],
                 marker="*", ms=14, color="tab:red", label=f"best (step {b['step']})")  # fmt: skip
        top.legend(fontsize=8)
    top.set_ylabel("expert-normalized score (%)" if scored else "mean return")
    top.set_title(
        f"{result['task']}: {result['demos']} demonstrations, {result['init']}", fontsize=10
    )
    top.grid(alpha=0.3)
    loss = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    if loss:
        bottom.plot(*zip(*loss, strict=True), lw=1.2, color="tab:gray")
        bottom.set_yscale("log")
    bottom.set(xlabel="step", ylabel="train loss")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- entry


def size_name(config: GatoConfig) -> str:
    """The SIZES name of an architecture (dropout and block_size aside), else 'custom'."""
    for name, c in SIZES.items():
        if dataclasses.replace(c, dropout=0.0, block_size=1) == dataclasses.replace(
            config, dropout=0.0, block_size=1
        ):
            return name
    return "custom"


def finetune(args: FinetuneArgs, world: D.World | None = None) -> dict:
    """One fine-tuning run; returns the finetune.json content (on rank 0; {} elsewhere)."""
    from gato.envs import canonical_name

    world = world or D.init_distributed(args.device)
    args.task = canonical_name(args.task)
    base, init_state, size = None, None, args.size
    if args.ckpt:
        try:
            ckpt = load_checkpoint(args.ckpt, with_optimizer=False)
        except CheckpointError as e:  # the input checkpoint; errors saving ours are not --ckpt's
            raise UserError(f"--ckpt {args.ckpt}: {e}") from e
        base, size = ckpt.config, size_name(ckpt.config)
        init_state = None if args.scratch else ckpt.model_state
        check_held_out(args, ckpt.state, ckpt.path)
    if not args.run_dir:
        init = "scratch" if init_state is None else "pretrained"
        stamp = D.broadcast_object(time.strftime("%Y%m%d-%H%M%S"), world)
        args.run_dir = f"runs/finetune-{args.task}-{args.demos}demos-{init}-{stamp}"
    run_dir = Path(args.run_dir)
    with run_folder_lock(run_dir, "gato.finetune", world):  # one writer per run folder
        if list_checkpoints(run_dir) or (run_dir / "best").exists():
            raise SystemExit(f"{run_dir} already holds a run: choose another --run-dir")
        if world.is_main:
            ensure_demos(args.task, args.data_dir, args.demos, args.collect)
            demo_view(args.task, args.data_dir, args.demos, run_dir / "demos")
        D.barrier(world)
        train_args = to_train_args(args, str(run_dir / "demos"), size)
        return FinetuneTrainer(train_args, world, args, base, init_state).run()


def main(argv=None) -> dict:
    """The command; a mistake in its input is a UserError (one line, exit 2 via run_command)."""
    from gato.cli import check_data_dir
    from gato.deploy import task_by_flag

    args = parse_args(argv)
    args.task = task_by_flag(args.task, "--task").name
    if not args.collect or Path(args.data_dir).exists():  # --collect may create the folder
        check_data_dir(args.data_dir)
    world = D.init_distributed(args.device)
    try:  # a CheckpointError saving (a full disk) is a UserError naming the run's folder
        return finetune(args, world)
    except (DemoError, FileNotFoundError, HeldOutError, LayoutError) as e:
        raise UserError(str(e)) from e
    finally:
        D.shutdown()


if __name__ == "__main__":
    sys.exit(run_command(main, prog="python -m gato.finetune"))
