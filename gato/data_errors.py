"""The user errors of choosing training data (issue 13 item 7): an unknown task in --tasks, a
data folder that is missing, a file, or without a task asked for.

Each is a :class:`gato.errors.UserError` (one line, exit 2 under run_command) and also the
builtin exception the sampler raised before (ValueError, FileNotFoundError), so callers that
catch those keep working.
"""

from __future__ import annotations

from pathlib import Path

from gato.datasets import MAKE_DATA_HINT, METADATA_NAME, read_metadata
from gato.errors import UserError


class UnknownTaskError(UserError, ValueError):
    """A name in `tasks` (train's --tasks) that is no task."""


class NoDataError(UserError, FileNotFoundError):
    """A data folder that is missing or a file, or holds no data of a task asked for."""


def resolve_task(name: str, data_dir: str) -> str:
    """A task folder name for `name` (a canonical name or JAT alias): UnknownTaskError naming
    --tasks and close matches, NoDataError naming `make data` if it was never collected."""
    if (Path(data_dir) / name / METADATA_NAME).is_file():
        return name
    from gato.envs import canonical_name  # imported only here: env packages are slow to import

    try:
        canonical = canonical_name(name)  # its message names close matches
    except ValueError as e:
        raise UnknownTaskError(f"--tasks: {e}") from None
    try:
        read_metadata(canonical, data_dir)
    except FileNotFoundError as e:
        raise NoDataError(f"--tasks: {e}") from None
    return canonical


def no_folder(data_dir) -> NoDataError:
    """The error for a data folder that is not a folder: missing, or a file."""
    what = "is a file, not a data folder" if Path(data_dir).exists() else "does not exist"
    return NoDataError(f"data folder {data_dir} {what}; {MAKE_DATA_HINT}")
