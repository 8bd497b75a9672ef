"""User errors: a mistake in what the user asked for (a flag, a file, a task, a folder).

Every command raises :class:`UserError` (or a subclass) for such a mistake, with one line that
names the flag, file or task and says what to do. Its ``__main__`` runs through
:func:`run_command`, which prints that line as ``<prog>: error: <message>`` on stderr and exits 2
(argparse's own usage errors exit 2 too). Any other exception is a bug and keeps its traceback;
``--debug`` (or the environment variable ``GATO_DEBUG=1``) shows the traceback of a user error
as well::

    if __name__ == "__main__":
        sys.exit(run_command(main, prog="python -m gato.deploy"))
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

DEBUG_FLAG = "--debug"
DEBUG_ENV = "GATO_DEBUG"
DEBUG_HELP = f"show the Python traceback of a user error too (or set {DEBUG_ENV}=1)"
USER_ERROR_STATUS = 2


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are one line too (`<prog>: error: ...`, exit 2),
    without the usage block: --help shows it."""

    def error(self, message):
        self.exit(USER_ERROR_STATUS, f"{self.prog}: error: {message} (see --help)\n")


def one_line(message: object) -> str:
    """The message with its line breaks (and the indentation after them) turned into spaces."""
    return re.sub(r"\s*\n\s*", " ", str(message).strip())


def debug_requested(argv: Sequence[str] | None = None) -> bool:
    """True if `argv` holds --debug (before any `--`) or GATO_DEBUG is set to a true value."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    args = list(sys.argv[1:] if argv is None else argv)
    return DEBUG_FLAG in args[: args.index("--")] if "--" in args else DEBUG_FLAG in args


def strip_debug(argv: Sequence[str]) -> list[str]:
    """argv without --debug (before any `--`), so that a parser that does not list it works."""
    args = list(argv)
    end = args.index("--") if "--" in args else len(args)
    return [a for a in args[:end] if a != DEBUG_FLAG] + args[end:]


def run_command(
    main: Callable[[list[str] | None], Any],
    argv: Sequence[str] | None = None,
    prog: str | None = None,
) -> int:
    """Run `main(argv)` as a command and return its exit status.

    A :class:`UserError`, or a ``SystemExit`` carrying a message instead of a status (the older
    style of some commands), is printed as one line ``<prog>: error: <message>`` on stderr and
    gives status 2; with --debug or GATO_DEBUG=1 its traceback is printed first. A SystemExit
    with a status (argparse's --help and usage errors) keeps it. Any other exception propagates
    with its traceback: it is a bug. `main` returning an int gives that status, anything else 0.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    prog = prog or os.path.basename(sys.argv[0] or "gato")
    try:
        result = main(strip_debug(args))
    except UserError as e:
        return _report(prog, e, debug)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            raise
        return _report(prog, e, debug, e.code)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _report(prog: str, error: BaseException, debug: bool, message: object = None) -> int:
    if debug:
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    text = one_line(error if message is None else message)
    if text.startswith("error: "):  # an older message that already says so
        text = text[len("error: ") :]
    print(f"{prog}: error: {text or type(error).__name__}", file=sys.stderr, flush=True)
    return USER_ERROR_STATUS
