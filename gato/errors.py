"""User errors: a mistake in what the user asked for (a flag, a file, a task, a folder).

Every command raises :class:`UserError` (or a subclass) for such a mistake, with one line that
names the flag, file or task and says what to do; the command prints that line and exits 2. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2."""
