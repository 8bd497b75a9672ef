"""Worker processes that die with their parent.

A `ProcessPoolExecutor` worker blocked in a long job outlives a parent killed by SIGKILL or
SIGTERM: it finishes its job (and writes its shard) although nobody will read the result, and a
rerun of the same command races it. `worker_pool` prevents both:

    >>> from gato.procs import worker_pool
    >>> with worker_pool(2, initializer=_init_worker, initargs=(queue,)) as pool:
    ...     futures = [pool.submit(run_job, job) for job in jobs]

- in each worker, before the caller's initializer, `die_with_parent` asks Linux to SIGKILL the
  worker when its parent dies (`prctl(PR_SET_PDEATHSIG)`) and starts a daemon thread that exits
  the worker when its parent pid changes (the portable fallback, which also covers a parent that
  died before the worker got to call prctl);
- in the parent, SIGTERM and SIGINT terminate the pool's workers before the signal takes its
  previous course (the previous handler runs, or the default action kills the parent), and
  leaving the block, normally or by an exception, shuts the pool down; an exception (Ctrl-C
  included) terminates the workers instead of waiting for their jobs. The previous signal
  handlers are restored on exit.

Linux sends the parent-death signal when the *thread* that started the worker exits, so create
the pool and submit to it from a thread that lives as long as the pool (normally the main thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["ORPHAN_EXIT_CODE", "die_with_parent", "terminate_workers", "worker_pool"]

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
ORPHAN_EXIT_CODE = 70  # a worker that found its parent gone exits with this status
WATCH_INTERVAL_S = 0.5  # how often the fallback thread compares the parent pid
TERMINATE_GRACE_S = 5.0  # SIGTERMed workers still alive after this are SIGKILLed
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


# ----------------------------------------------------------------------------- worker side


def _set_parent_death_signal() -> bool:
    """prctl(PR_SET_PDEATHSIG, SIGKILL) on Linux; False where the OS has no such call."""
    if not sys.platform.startswith("linux"):
        return False  # the watchdog thread of die_with_parent does the job alone there
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    return True


def _watch_parent(parent_pid: int, interval: float) -> None:
    while True:
        if os.getppid() != parent_pid:  # reparented: the parent died
            os._exit(ORPHAN_EXIT_CODE)  # no cleanup: nothing this worker holds is wanted
        time.sleep(interval)


def die_with_parent(parent_pid: int | None = None, interval: float = WATCH_INTERVAL_S) -> None:
    """Makes this (child) process die when its parent dies.

    `parent_pid` is the parent's pid as the parent saw it (os.getpid() there, passed to the
    child); without it, the current parent. If the parent is already gone, the child exits at
    once with `ORPHAN_EXIT_CODE`.
    """
    if parent_pid is None:
        parent_pid = os.getppid()
    _set_parent_death_signal()
    # Checked after prctl: a parent that died before prctl took effect sent no signal, but has
    # already left this process reparented.
    if os.getppid() != parent_pid:
        os._exit(ORPHAN_EXIT_CODE)
    watcher = threading.Thread(
        target=_watch_parent, args=(parent_pid, interval), name="die-with-parent", daemon=True
    )
    watcher.start()


def _init_worker(parent_pid: int, initializer: Callable | None, initargs: Sequence) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


# ----------------------------------------------------------------------------- parent side


def _worker_processes(pool: ProcessPoolExecutor) -> list:
    # ProcessPoolExecutor keeps its live workers in `_processes` (pid -> Process); Python 3.14
    # adds public terminate_workers(), but this project supports 3.10+.
    return list((getattr(pool, "_processes", None) or {}).values())


def terminate_workers(pool: ProcessPoolExecutor, grace: float = TERMINATE_GRACE_S) -> None:
    """SIGTERM every worker of `pool`, then SIGKILL those still alive after `grace` seconds."""
    procs = _worker_processes(pool)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, ValueError):  # already gone or closed
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(ValueError):
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()


def _handler(pool: ProcessPoolExecutor, signum: int, previous) -> Callable:
    def handle(received: int, frame) -> None:
        terminate_workers(pool)
        if callable(previous):  # e.g. Python's default SIGINT handler: KeyboardInterrupt
            previous(received, frame)
            return
        # The default action (SIG_DFL, or None for a handler not set from Python): restore it
        # and deliver the signal again, so the parent dies of it as it would have.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return handle


@contextlib.contextmanager
def worker_pool(
    workers: int,
    initializer: Callable | None = None,
    initargs: Sequence[Any] = (),
    mp_context=None,
) -> Iterator[ProcessPoolExecutor]:
    """A `ProcessPoolExecutor` of `workers` spawned processes that die with this process.

    `initializer(*initargs)` runs in each worker after `die_with_parent` (both must pickle:
    module-level functions). `mp_context` defaults to spawn (fork is unsafe with MuJoCo and
    OpenGL state). SIGTERM and SIGINT handlers are installed only from the main thread (Python
    allows no other); elsewhere the parent-death signal alone covers a parent that is killed.
    """
    if workers < 1:
        raise ValueError(f"worker_pool needs at least 1 worker, got {workers}")
    ctx = mp_context or mp.get_context("spawn")
    pool = ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(os.getpid(), initializer, tuple(initargs)),
    )
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in HANDLED_SIGNALS:
            old = signal.getsignal(signum)
            if old == signal.SIG_IGN:
                continue  # the caller chose to ignore it: the workers need not die of it either
            previous[signum] = old
            signal.signal(signum, _handler(pool, signum, old))
    clean = False
    try:
        yield pool
        clean = True
    finally:
        try:
            if clean:
                pool.shutdown(wait=True)
            else:  # an error or Ctrl-C: do not wait for the jobs still running
                terminate_workers(pool)  # first: shutdown() forgets the worker processes
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            for signum, old in previous.items():
                signal.signal(signum, signal.SIG_DFL if old is None else old)
