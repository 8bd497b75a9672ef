"""Command lines from typed dataclasses: one `--flag` per field, the field's docstring as its help.

Every command of the project (train, finetune, deploy, evaluate, demo, the Figure 9 preset)
declares its options as a dataclass whose fields each carry a one-line docstring; this module
turns such a class into an argparse parser, so `--help` always explains every flag.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields
from pathlib import Path

_TYPES = {"int": int, "float": float, "str": str, "Path": Path}


def field_docs(cls) -> dict[str, str]:
    """The docstring under each field of a dataclass, by field name."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    return {
        node.target.id: str(nxt.value.value).strip()
        for node, nxt in zip(body, body[1:], strict=False)
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr)
    }


def _value_type(f) -> type:
    """The type a flag's text converts to: the default's, else the annotation's first type."""
    if f.default is not MISSING and f.default is not None:
        return type(f.default)
    name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
    return _TYPES.get(name.split("|")[0].strip(), str)


def dataclass_parser(
    cls, prog: str, description: str | None, choices: Mapping[str, Sequence] | None = None
) -> argparse.ArgumentParser:
    """An argparse parser with a `--flag` per field of `cls`."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    docs = field_docs(cls)
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = None if f.default is MISSING else f.default
        kind = _value_type(f)
        if kind is bool:  # a switch; one that is on by default can be turned off with --no-...
            action = argparse.BooleanOptionalAction if default else "store_true"
            parser.add_argument(flag, action=action, default=bool(default), help=docs[f.name])
            continue
        shown = "" if default is None else " (default: %(default)s)"
        parser.add_argument(
            flag,
            type=kind,
            default=default,
            help=docs[f.name] + shown,
            choices=(choices or {}).get(f.name),
        )
    return parser


def parse_dataclass_args(
    cls, argv, prog: str, description: str | None, choices: Mapping[str, Sequence] | None = None
):
    """(an instance of `cls` from argv, the parser). A `preset` field, if the class has one,
    names a JSON file of defaults that the command line overrides."""
    parser = dataclass_parser(cls, prog, description, choices)
    args = parser.parse_args(argv)
    if getattr(args, "preset", None):
        try:
            preset = json.loads(Path(args.preset).read_text())
        except (OSError, json.JSONDecodeError) as e:
            parser.error(f"cannot read the preset {args.preset}: {e}")
        preset.pop("comment", None)
        unknown = sorted(set(preset) - {f.name for f in fields(cls)})
        if unknown:
            parser.error(f"{args.preset}: unknown options {unknown}")
        parser.set_defaults(**preset)
        args = parser.parse_args(argv)
    return cls(**vars(args)), parser
