"""Command lines from typed dataclasses: one `--flag` per field, the field's docstring as its help.

Every command of the project (train, finetune, deploy, evaluate, demo, the Figure 9 preset)
declares its options as a dataclass whose fields each carry a one-line docstring; this module
turns such a class into an argparse parser, so `--help` always explains every flag. Every parser
also has `--debug` (gato/errors.py: show the traceback of a user error too).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields
from pathlib import Path

from gato.errors import DEBUG_FLAG, DEBUG_HELP, OneLineParser

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
    parser = OneLineParser(  # a usage error is one line too, like every user error
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
    add_debug_flag(parser)
    return parser


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """`--debug` for --help and for direct main(argv) calls; gato.errors.run_command reads it
    (and removes it) before the parser runs."""
    if not any(DEBUG_FLAG in a.option_strings for a in parser._actions):
        parser.add_argument(DEBUG_FLAG, action="store_true", dest="_debug", help=DEBUG_HELP)


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
    values = vars(args)
    values.pop("_debug", None)
    return cls(**values), parser


def check_at_least(args, minimums: Mapping[str, float]) -> None:
    """UserError naming the first flag whose value is below its minimum (None: not given, so
    not checked; NaN is below every minimum)."""
    from gato.errors import UserError

    for name, low in minimums.items():
        value = getattr(args, name)
        if value is not None and not value >= low:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} must be at least {low}, got {value}")


def load_user_checkpoint(path, with_optimizer: bool = False, device: str | None = None):
    """gato.checkpoint.load_checkpoint (or, with `device`, load_model: (model, checkpoint)) of a
    checkpoint the user named, any failure to read it a UserError naming the path: a missing,
    incomplete or corrupted checkpoint is a mistake in the input, not a bug here."""
    from gato.checkpoint import CheckpointError, load_checkpoint, load_model
    from gato.errors import UserError

    try:
        if device is not None:
            return load_model(path, device=device)
        return load_checkpoint(path, with_optimizer)
    except CheckpointError as e:
        raise UserError(f"{e} (checkpoint {path})" if str(path) not in str(e) else str(e)) from e
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {e}): give a checkpoint "
            "folder written by gato.train or gato.finetune, or its run folder"
        ) from e


def check_data_dir(path, flag: str = "--data-dir", need_tasks: bool = False) -> None:
    """UserError unless `path` (None: not given) is an existing folder; with `need_tasks`, one
    holding at least one collected task folder (a metadata.json inside)."""
    from gato.errors import UserError

    if path is None:
        return
    hint = "collect data first (`make data`, or `python -m gato.collect --task TASK`)"
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag} {path} does not exist: {hint}, or name the data folder")
    if not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a data folder: name the folder")
    if need_tasks and not any(p.is_file() for p in path.glob("*/metadata.json")):
        raise UserError(f"{flag} {path} holds no collected task: {hint}")


def options_to_flags(options: Mapping[str, object]) -> list[str]:
    """A recipe's options as command-line flags, the inverse of the dataclass parsers:
    {"batch_size": 8, "greedy": True, "off": False, "unset": None} -> ["--batch-size", "8",
    "--greedy"] (a False or None option is left at the command's default)."""
    out: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not False and value is not None:
            out += [flag, str(value)]
    return out
