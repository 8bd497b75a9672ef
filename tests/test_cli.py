"""Command lines built from typed dataclasses (gato.cli)."""

import json
from dataclasses import dataclass

import pytest

from gato.cli import field_docs, parse_dataclass_args


@dataclass
class Options:
    steps: int = 10
    """how many steps"""
    name: str | None = None
    """an optional name"""
    fast: bool = False
    """go fast"""
    keep: bool = True
    """keep things"""
    preset: str = ""
    """JSON file of defaults"""


def parse(argv):
    return parse_dataclass_args(Options, argv, "prog", None, {"name": ["a", "b"]})


def test_flags_types_switches_and_help():
    assert field_docs(Options)["steps"] == "how many steps"
    args, parser = parse(["--steps", "3", "--name", "a", "--fast", "--no-keep"])
    assert args == Options(steps=3, name="a", fast=True, keep=False)
    assert parse([])[0] == Options()
    text = parser.format_help()
    for doc in ("how many steps (default: 10)", "an optional name", "go fast", "keep things"):
        assert doc in text
    with pytest.raises(SystemExit):
        parse(["--name", "c"])  # not one of the choices


def test_preset_sets_defaults_that_flags_override(tmp_path, capsys):
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"comment": "x", "steps": 7, "fast": True}))
    assert parse(["--preset", str(preset)])[0].steps == 7
    args = parse(["--preset", str(preset), "--steps", "2"])[0]
    assert (args.steps, args.fast) == (2, True)
    preset.write_text(json.dumps({"stpes": 7}))
    with pytest.raises(SystemExit):
        parse(["--preset", str(preset)])
    assert "unknown options ['stpes']" in capsys.readouterr().err
