"""experiments/cpu_proof.py (`make reproduce-cpu`) end to end on a tiny budget: both pretraining
runs, the three evaluations, Figure 9's two halves and their merge, the ablation report; then a
second call that finds everything done and runs nothing again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TASKS = "cartpole.balance,babyai.go-to-red-ball"


@pytest.mark.slow  # 2 pretraining runs, 3 evaluations, 4 fine-tuning runs, in subprocesses
def test_cpu_proof_end_to_end(collected, tmp_path):
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps({
        "size": "debug", "tasks": TASKS, "steps": 2, "batch_size": 2, "seq_len": 64,
        "eval_every": 2, "eval_batches": 1, "ckpt_every": 2, "num_workers": 0, "lr": 1e-3,
    }))  # fmt: skip
    runs, out = tmp_path / "runs", tmp_path / "out"
    cmd = [sys.executable, "experiments/cpu_proof.py", "--stages", "pretrain,eval,fig9,report",
           "--train-preset", str(preset), "--data-dir", str(collected), "--runs-dir", str(runs),
           "--out", str(out), "--episodes", "1", "--eval-max-steps", "3",
           "--fig9-task", "cartpole.balance", "--fig9-demos", "1,2", "--seeds", "1",
           "--ft-steps", "2", "--ft-eval-every", "2", "--ft-eval-episodes", "1",
           "--ft-batch-size", "2", "--ft-seq-len", "32", "--unprompted-eval"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    # Pretraining: the ablation differs from the main run only in its prompt probability.
    args = {n: json.loads((runs / f"pretrain-{n}" / "args.json").read_text())
            for n in ("prompted", "noprompt")}  # fmt: skip
    assert (args["prompted"]["prompt_prob"], args["noprompt"]["prompt_prob"]) == (0.25, 0.0)
    assert {k: v for k, v in args["prompted"].items() if k not in ("prompt_prob", "run_dir")} == {
        k: v for k, v in args["noprompt"].items() if k not in ("prompt_prob", "run_dir")
    }
    # Evaluations: every pretraining task, prompted only where asked.
    policies = {}
    for name in ("prompted", "prompted-unprompted", "noprompt"):
        report = json.loads((out / f"eval-{name}" / "eval.json").read_text())
        assert [r["task"] for r in report["tasks"]] == TASKS.split(",")
        assert report["step"] == 2 and report["episodes"] == 1
        policies[name] = report["policy"]
    assert "prompt 0 tokens" not in policies["prompted"]
    assert "prompt 0 tokens" in policies["noprompt"] and "prompt 0 tokens" in policies[
        "prompted-unprompted"]  # fmt: skip
    # The ablation table has one row per task and the aggregates, one column per evaluation.
    ablation = (out / "ablation.md").read_text()
    assert all(f"| {t} |" in ablation for t in TASKS.split(","))
    assert "share of tasks at or above 80%" in ablation and (out / "ablation.png").stat().st_size
    # Figure 9: both initializations at both budgets in the merged table.
    fig9 = json.loads((out / "fig9_cartpole.balance.json").read_text())
    assert {(r["init"], r["demos"]) for r in fig9["rows"]} == {
        (i, d) for i in ("pretrained", "scratch") for d in (1, 2)
    }
    facts = json.loads((out / "facts.json").read_text())
    assert facts["model"]["parameters"] > 0 and facts["model"]["step"] == 2
    assert [d["task"] for d in facts["pretraining_data"]] == TASKS.split(",")
    assert facts["pretraining"]["noprompt"]["last_train_loss"] > 0
    assert len(facts["finetune_seconds"]) == 4 and facts["eval_seconds"]["noprompt"] > 0
    assert (out / "pretrain-noprompt-loss.png").stat().st_size > 0
    times = json.loads((runs / "times.json").read_text())
    assert set(times) == {"pretrain", "eval", "fig9"}

    # Everything is done: a second call trains and evaluates nothing.
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("is finished") == 2 and again.stdout.count("is up to date") == 4
    assert "fig9 is up to date" in again.stdout  # with the 3 evaluations
    assert "gato.train" not in again.stdout and "gato.evaluate" not in again.stdout
