"""`python -m gato.bench`: run the benchmark suites, print tables, write JSON results."""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from gato.bench import SUITES
from gato.cli import add_debug_flag
from gato.errors import OneLineParser, UserError, run_command


def format_table(rows: list[dict]) -> str:
    """Rows of dicts -> an aligned plain-text table (columns in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]

    def cell(v) -> str:
        if isinstance(v, float | np.floating):
            return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, body)])


def main(argv=None) -> None:
    parser = OneLineParser(prog="python -m gato.bench", description=__doc__)
    parser.add_argument(
        "--suite",
        action="append",
        choices=SUITES,
        help="run only this suite (repeatable); default: all",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions: a smoke run, not a measurement"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("experiments/results/bench.json"),
        help="JSON file for the results (suites not run keep their old rows)",
    )
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    try:  # the rows of suites not run are kept: a file that is not such JSON is refused first
        results = json.loads(args.out.read_text()) if args.out.exists() else {}
        if not isinstance(results, dict):
            raise ValueError(f"a JSON {type(results).__name__}, not an object of suites")
    except (OSError, ValueError) as e:
        raise UserError(
            f"--out {args.out} cannot be read as the results file ({e}); name another file"
        ) from None
    for name in args.suite or SUITES:
        module = importlib.import_module(f"gato.bench.{name}")
        print(f"\n== {name} ==", flush=True)
        rows = module.run(quick=args.quick)
        print(format_table(rows), flush=True)
        results[name] = {
            "rows": rows,
            "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
            "quick": args.quick,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":  # a user error is one line `python -m gato.bench: error: ...`
    sys.exit(run_command(main, prog="python -m gato.bench"))
