"""`make demo` runs for real on a tiny budget and learns."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_collects_trains_and_reports(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gato.demo",
            "--out",
            str(out),
            "--tasks",
            "cartpole.balance,babyai.go-to-red-ball",
            "--episodes",
            "3",
            "--steps",
            "40",
            "--batch-size",
            "8",
            "--window",
            "128",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "loss.png").stat().st_size > 0
    for task in ("cartpole.balance", "babyai.go-to-red-ball"):
        assert summary["after"][task]["loss"] < summary["before"][task]["loss"] - 0.5, task
    assert "held-out episode" in result.stdout
