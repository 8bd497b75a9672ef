"""The score table: normalized scores, the shipped JSON, refreshing it from collected data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gato import scores
from gato.datasets import write_json_atomic

TABLE = {"pong": {"random": -20.0, "expert": 20.0}, "reach": {"random": 100.0, "expert": 600.0}}


def test_normalized_score():
    assert scores.normalized_score("pong", -20.0, TABLE) == 0.0
    assert scores.normalized_score("pong", 20.0, TABLE) == 1.0
    assert scores.normalized_score("pong", 0.0, TABLE) == 0.5
    assert scores.normalized_score("reach", 350.0, TABLE) == 0.5
    assert scores.normalized_score("reach", 700.0, TABLE) == pytest.approx(1.2)  # above expert
    assert scores.normalized_score("reach", 0.0, TABLE) == pytest.approx(-0.2)
    with pytest.raises(KeyError, match="gato.scores --update-from"):
        scores.normalized_score("no-such-task", 1.0, TABLE)
    with pytest.raises(ValueError, match="undefined"):
        scores.normalized_score("flat", 1.0, {"flat": {"random": 1.0, "expert": 1.0}})


def test_shipped_table_loads_from_the_package():
    table = scores.load_scores()
    assert isinstance(table, dict)
    for task, entry in table.items():
        assert entry["expert"] != entry["random"], task
        assert scores.normalized_score(task, entry["expert"]) == pytest.approx(1.0)
        assert scores.normalized_score(task, entry["random"]) == pytest.approx(0.0)


def test_shipped_table_covers_the_default_suite():
    from gato.collect import SUITES

    missing = sorted(set(SUITES["default"]) - set(scores.load_scores()))
    assert not missing, (
        f"run `make data` then `python -m gato.scores --update-from data`: {missing}"
    )


def _meta(task, expert, random, complete=True, policy="expert"):
    return {
        "task": task,
        "complete": complete,
        "policy": policy,
        "expert_return": expert,
        "random_return": random,
        "random_returns": [random] * 3,
        "episodes": 10,
        "success_rate": None,
    }


def test_update_from_data_dir(tmp_path):
    data = tmp_path / "data"
    write_json_atomic(data / "a.task" / "metadata.json", _meta("a.task", 10.0, 1.0))
    write_json_atomic(data / "b.task" / "metadata.json", _meta("b.task", 5.0, 0.0, complete=False))
    write_json_atomic(data / "c.task" / "metadata.json", _meta("c.task", 5.0, 0.0, policy="random"))
    out = tmp_path / "scores.json"
    write_json_atomic(out, {"tasks": {"old.task": {"random": 0.0, "expert": 1.0}}})
    cmd = [sys.executable, "-m", "gato.scores", "--update-from", str(data), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert res.returncode == 0, res.stderr
    table = json.loads(out.read_text())["tasks"]
    assert sorted(table) == ["a.task", "old.task"]  # incomplete / random-policy data is skipped
    assert table["a.task"]["expert"] == 10.0 and table["a.task"]["random"] == 1.0
    assert scores.normalized_score("a.task", 5.5, table) == 0.5


def test_update_from_missing_dir_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        scores.table_from_data(tmp_path / "nope")
