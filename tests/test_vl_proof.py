"""experiments/vl_proof.py (issue 14's proof): its presets, its report before anything ran, and
the whole command end to end on the smoke preset (debug size, 3 steps) into tmp_path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

import vl_proof  # noqa: E402
import vl_proof_report  # noqa: E402

SMOKE = "experiments/presets/vl-proof-smoke.json"


def argv(tmp_path, *extra):
    return [
        "--recipe", SMOKE, "--data-dir", str(tmp_path / "data"),
        "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
        "--results", str(tmp_path / "vl-proof.md"), "--jobs", "1", *extra,
    ]  # fmt: skip


def test_presets_and_run_task_lists():
    for name in ("vl-proof.json", "vl-proof-smoke.json"):
        preset = vl_proof.load_preset(ROOT / "experiments" / "presets" / name)
        tasks = vl_proof.run_tasks(preset)
        assert set(tasks) == set(vl_proof.RUNS)
        assert tasks["joint"].split(",") == (
            tasks["control"].split(",") + tasks["language"].split(",")
        )
        assert not any(t.startswith(("vl.", "text.")) for t in tasks["control"].split(","))
        assert all(t.startswith(("vl.", "text.")) for t in tasks["language"].split(","))
    real = vl_proof.load_preset(ROOT / "experiments" / "presets" / "vl-proof.json")
    assert real["train"]["size"] == "small"
    assert vl_proof.flags({"batch_size": 8, "greedy": True, "x": False, "y": None}) == [
        "--batch-size",
        "8",
        "--greedy",
    ]


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no preset"):
        vl_proof.main(["--recipe", str(tmp_path / "none.json")])
    (tmp_path / "bad.json").write_text(json.dumps({"train": {}}))
    with pytest.raises(SystemExit, match="lacks"):
        vl_proof.main(["--recipe", str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit):
        vl_proof.main(argv(tmp_path, "--stages", "train,nonsense"))


def test_report_before_any_run_says_so(tmp_path):
    assert vl_proof.main(argv(tmp_path, "--stages", "report")) == 0
    text = (tmp_path / "vl-proof.md").read_text()
    assert "**Not run yet**: 0 of 3 runs are evaluated." in text
    assert "Full reports: none yet." in text


@pytest.mark.slow  # collects, trains three debug runs 3 steps each, evaluates them (~2 min)
def test_vl_proof_end_to_end(tmp_path):
    assert vl_proof.main(argv(tmp_path)) == 0
    out = tmp_path / "out"
    reports = {n: json.loads((out / f"eval-{n}" / "eval.json").read_text()) for n in vl_proof.RUNS}
    assert [r["task"] for r in reports["joint"]["tasks"]] == ["cartpole.balance"]
    assert {"captions", "vqa", "text"} <= set(reports["joint"]["language"])
    assert "language" not in reports["control"] and reports["control"]["tasks"]
    assert reports["language"]["tasks"] == [] and "vqa" in reports["language"]["language"]
    for report in reports.values():
        assert report["step"] == 3
    assert (out / "captions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "vl-proof.md").read_text()
    assert "Measured with the committed code." in table
    assert "| cartpole.balance: normalized score |" in table
    row = next(r for r in table.splitlines() if r.startswith("| caption token F1"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[2] == "not trained" and "(commonest train caption)" in cells[4], cells
    float(cells[1]), float(cells[3])  # the joint and language runs' numbers
    assert "![captions](out/captions.png)" in table
    times = json.loads((tmp_path / "runs" / "times.json").read_text())
    assert set(times) == {"data", "train", "eval", "grid"}
    assert set(times["train"]["commands"]) == {f"train-{n}" for n in vl_proof.RUNS}
    # A rerun reuses every stage: no training, no evaluation runs again.
    before = {n: (out / f"eval-{n}" / "eval.json").stat().st_mtime_ns for n in vl_proof.RUNS}
    assert vl_proof.main(argv(tmp_path, "--stages", "train,eval,report")) == 0
    after = {n: (out / f"eval-{n}" / "eval.json").stat().st_mtime_ns for n in vl_proof.RUNS}
    assert before == after
    assert json.loads((tmp_path / "runs" / "times.json").read_text())["train"] == times["train"]
    assert vl_proof_report.RUN_TITLES["joint"] in (tmp_path / "vl-proof.md").read_text()
