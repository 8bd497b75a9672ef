"""One writer per folder: a lock file held for the life of a run.

    >>> from gato.locks import folder_lock
    >>> with folder_lock("data/cartpole.balance", "gato.collect"):
    ...     ...  # collect into the folder; a second writer gets a LockError

The lock is ``<folder>/.lock``, locked with ``flock(LOCK_EX | LOCK_NB)`` and holding the holder's
pid, host, start time and command line (JSON). The kernel releases a flock when its holder dies,
SIGKILL included, so the lock file of a dead process is *stale*: the next writer locks it, says
whose it was, and takes it over; a live holder's lock is refused with a one-line
:class:`LockError` naming its pid. The file is removed on release (after checking, under the
lock, that the name still points at the locked file, so that two writers can never each hold a
different inode of one name).

Locks are re-entrant within a process (``gato.finetune`` locks its run folder, and the trainer it
runs locks it again). Worker processes are spawned (collection) or die with their parent
(the trainer's data workers), so a lock never outlives the process that took it for long.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gato.errors import UserError

LOCK_NAME = ".lock"
READ_RETRIES = 20  # a holder writes its pid right after locking: wait up to ~0.2 s to read it


class LockError(UserError):
    """Another live process is writing into the folder."""


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def read_holder(path: str | os.PathLike) -> dict:
    """What a lock file says about its holder ({} if it is missing, empty or unreadable)."""
    try:
        return json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}


@dataclass
class _Held:
    fd: int
    count: int


_held: dict[Path, _Held] = {}  # locks this process holds, by lock-file path


def _describe(holder: dict) -> str:
    if not holder:
        return "a process that has not written its pid yet"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, since {started}: "
        f"{holder.get('command', '?')}"
    )


class FolderError(UserError):
    """The folder to write into cannot be written: read-only, not the user's, or a file."""


def _unwritable(what: str, folder: Path, e: OSError) -> FolderError:
    return FolderError(
        f"{what}: cannot write into {folder} ({e.strerror or e}: {e.filename or folder}); "
        "make it writable or choose another folder"
    )


def acquire(folder: str | os.PathLike, what: str) -> Path:
    """Lock `folder` (created if missing) for this process; returns the lock file's path.

    Raises LockError (one line: the folder, the holder's pid and command, what to do) if a live
    process holds it; FolderError if the folder cannot be created or written (read-only). A
    stale lock (its holder died) is taken over, with a line on stderr."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # read-only, not ours, or a file in the way
        raise _unwritable(what, folder, e) from None
    path = (folder / LOCK_NAME).resolve()
    if path in _held:
        _held[path].count += 1
        return path
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise _unwritable(what, folder, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = {}
            for _ in range(READ_RETRIES):
                holder = read_holder(path)
                if holder:
                    break
                time.sleep(0.01)
            raise LockError(
                f"{what}: {folder} is in use by another writer ({_describe(holder)}); wait for "
                f"it to finish, stop it (kill {holder.get('pid', '<pid>')}), or use another folder"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder released and removed the name between our open and flock
    old = read_holder(path)
    if old and old.get("pid") != os.getpid():
        alive = pid_alive(int(old.get("pid", 0)))
        print(
            f"{what}: taking over the stale lock of {folder} ({_describe(old)}; "
            f"{'its pid is now another process' if alive else 'no longer running'})",
            file=sys.stderr,
        )
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "command": " ".join(sys.argv) or what,
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    os.fsync(fd)
    _held[path] = _Held(fd, 1)
    return path


def release(path: Path) -> None:
    """Undo one `acquire`; the last one removes the lock file and unlocks it."""
    held = _held.get(path)
    if held is None:
        return
    held.count -= 1
    if held.count > 0:
        return
    del _held[path]
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # while still locked: a waiting writer then retries on a fresh file
    os.close(held.fd)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[Path]:
    """Hold the lock of `folder` for the block (see :func:`acquire`)."""
    path = acquire(folder, what)
    try:
        yield path
    finally:
        release(path)


@contextlib.contextmanager
def run_folder_lock(folder: str | os.PathLike, what: str, world) -> Iterator[None]:
    """The lock of a run folder for a (possibly distributed) run: rank 0 writes the folder and
    holds the lock; its LockError is every rank's, so that no rank waits for a refused one.
    `world`: a :class:`gato.distributed.World`."""
    from gato import distributed as D

    path, error = None, None
    if world.is_main:
        try:
            path = acquire(folder, what)
        except LockError as e:
            error = str(e)
    error = D.broadcast_object(error, world)
    if error is not None:
        raise LockError(error)
    try:
        yield
    finally:
        if path is not None:
            release(path)
