"""`make demo` runs for real, end to end, on a tiny budget."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_collects_trains_evaluates_and_deploys(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gato.demo",
            "--out",
            str(out),
            "--tasks",
            "babyai.go-to-red-ball,cartpole.balance",
            "--episodes",
            "3",
            "--steps",
            "24",
            # 4 x 256 tokens a step: 256 holds one whole BabyAI timestep (~159 tokens), which
            # gato.train requires of the context (gato/layout_check.py).
            "--batch-size",
            "4",
            "--seq-len",
            "256",
            "--eval-episodes",
            "1",
            "--greedy-tasks",
            "dmc",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [row["task"] for row in summary["tasks"]] == [
        "babyai.go-to-red-ball",
        "cartpole.balance",
    ]
    assert all(row["normalized_score"] is not None for row in summary["tasks"])
    # --greedy-tasks dmc: cartpole acts greedily, BabyAI samples.
    decoding = {row["task"]: row["decoding"] for row in summary["tasks"]}
    assert decoding == {"babyai.go-to-red-ball": "temperature 1.0", "cartpole.balance": "greedy"}
    for path in (*summary["plots"].values(), summary["video"], summary["prompt"]):
        assert Path(path).stat().st_size > 0, path
    assert (out / "eval" / "eval.md").read_text().count("|") > 10
    rows = [r for r in csv.DictReader(open(out / "run" / "metrics.csv")) if r["val_loss"]]
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"]) - 1.0  # it learned
    assert "Expert-normalized scores" in result.stdout
