"""gato.procs: pool workers die with their parent (SIGKILL, SIGTERM, SIGINT, an error), in a
bare pool and in a real `python -m gato.collect`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from gato.procs import ORPHAN_EXIT_CODE, worker_pool

REPO = Path(__file__).resolve().parents[1]
# Scripts run from a temporary folder import this checkout's gato (cwd is not on a script's path).
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
DEADLINE_S = 30.0  # liveness deadline: the workers' own jobs last 600 s


# ------------------------------------------------------------------- /proc helpers (Linux)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a live process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return fields[0], int(fields[1]), int(fields[19])


def children(pid: int) -> dict[int, int]:
    """Processes whose parent is `pid`: {pid: start time} (start time tells a reused pid)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[1] == pid and stat[0] not in "ZX":
                out[int(entry.name)] = stat[2]
    return out


def alive(pids: dict[int, int]) -> list[int]:
    """Those of `pids` still running (a zombie nobody reaped has finished: not counted)."""
    live = []
    for pid, start in pids.items():
        stat = _stat(pid)
        if stat and stat[2] == start and stat[0] not in "ZX":
            live.append(pid)
    return live


def wait_until(condition, what: str, deadline_s: float = DEADLINE_S):
    end = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {deadline_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def assert_all_die(pids: dict[int, int]) -> None:
    end = time.monotonic() + DEADLINE_S
    while alive(pids) and time.monotonic() < end:
        time.sleep(0.1)
    left = alive(pids)
    for pid in left:  # do not leave them behind for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their parent by {DEADLINE_S:.0f} s"


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


# ------------------------------------------------------------------- a parent with a pool

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from gato.procs import worker_pool

    def ready(folder):  # the caller's initializer: runs in each worker after die_with_parent
        open(os.path.join(folder, f"worker-{os.getpid()}"), "w").close()

    if __name__ == "__main__":
        folder, mode = sys.argv[1], sys.argv[2]
        if mode == "chain":  # a handler of the caller's own: it must still run, after ours
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(3))
        # SIGINT is ignored in background jobs of a shell; this parent wants Ctrl-C.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with worker_pool(2, ready, (folder,)) as pool:
            futures = [pool.submit(time.sleep, 600) for _ in range(2)]
            for future in futures:
                future.result()
    """
)


def _start_parent(tmp_path: Path, mode: str):
    script = tmp_path / "parent.py"
    script.write_text(SCRIPT)
    # Output to a file, not a pipe: orphaned workers would hold a pipe open, and reading it
    # would wait for them instead of failing the test.
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), mode],
            cwd=REPO,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    marks = wait_until(
        lambda: (m := sorted(tmp_path.glob("worker-*"))) and len(m) == 2 and m,
        "two initialized workers",
        120.0,
    )
    workers = {int(p.name.split("-")[1]) for p in marks}
    kids = children(proc.pid)
    assert workers <= set(kids), (workers, kids)
    return proc, kids


@pytest.mark.slow  # spawns a parent and two workers: a few seconds
@pytest.mark.parametrize(
    "mode, signum, returncode",
    [
        ("plain", signal.SIGKILL, -signal.SIGKILL),
        ("plain", signal.SIGTERM, -signal.SIGTERM),  # dies of the signal, as without a pool
        ("plain", signal.SIGINT, -signal.SIGINT),  # an uncaught KeyboardInterrupt
        ("chain", signal.SIGTERM, 3),  # the caller's previous handler ran
    ],
)
def test_workers_die_with_their_parent(tmp_path, mode, signum, returncode):
    proc, kids = _start_parent(tmp_path, mode)
    os.kill(proc.pid, signum)
    proc.wait(timeout=120)
    assert_all_die(kids)
    assert proc.returncode == returncode, (tmp_path / "stderr.txt").read_text()


def test_an_orphan_exits_at_once():
    """A worker whose parent died before it set the parent-death signal exits by itself."""
    code = "from gato.procs import die_with_parent; die_with_parent(1); print('survived')"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True
    )
    assert out.returncode == ORPHAN_EXIT_CODE and "survived" not in out.stdout, out.stderr


# ------------------------------------------------------------------- in this process

_remembered = None


def _remember(value):
    global _remembered
    _remembered = value


def _recall():
    return _remembered, os.getppid()


def test_initializer_runs_and_handlers_are_restored():
    def mine(signum, frame):
        raise AssertionError("not expected to run")

    def my_int(signum, frame):
        raise AssertionError("not expected to run")

    # Both handlers set here: a job started in the background inherits SIGINT ignored, so the
    # handler to restore is whatever was installed, not Python's default.
    before = signal.signal(signal.SIGTERM, mine)
    before_int = signal.signal(signal.SIGINT, my_int)
    try:
        with worker_pool(1, _remember, (7,)) as pool:
            assert signal.getsignal(signal.SIGTERM) is not mine
            assert signal.getsignal(signal.SIGINT) is not my_int
            assert pool.submit(_recall).result() == (7, os.getpid())
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is my_int
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, before_int)
    with pytest.raises(ValueError, match="at least 1"):
        with worker_pool(0):
            pass


def test_an_error_in_the_block_terminates_running_jobs():
    with pytest.raises(RuntimeError, match="boom"):
        with worker_pool(1) as pool:
            worker = pool.submit(os.getpid).result()
            kids = {worker: children(os.getpid())[worker]}
            sleeping = pool.submit(time.sleep, 600)
            raise RuntimeError("boom")
    # Leaving the block did not wait 600 s for the job: the worker was terminated.
    assert not alive(kids)
    assert sleeping.cancelled() or isinstance(sleeping.exception(), BrokenProcessPool)
    with pytest.raises((CancelledError, BrokenProcessPool)):
        sleeping.result()


# ------------------------------------------------------------------- a real collection


def _maps_mujoco(pid: int) -> bool:
    try:
        return "libmujoco" in open(f"/proc/{pid}/maps").read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


@pytest.mark.slow  # a real 2-worker collection, killed: ~10 s
@pytest.mark.parametrize(
    "signum, returncode",
    [
        (signal.SIGKILL, -signal.SIGKILL),
        (signal.SIGTERM, -signal.SIGTERM),  # dies of the signal once the workers are gone
        (signal.SIGINT, 130),  # Ctrl-C: a message, the shell's code for it
    ],
)
def test_killed_collection_leaves_no_worker_behind(tmp_path, signum, returncode):
    args = ["--task", "cartpole.balance", "--episodes", "100", "--workers", "2"]
    args += ["--shard-size", "25", "--random-episodes", "0", "--data-dir", str(tmp_path)]
    # Output to a file: orphaned workers would hold a pipe open (see tests/test_procs.py).
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gato.collect", *args, "--no-progress"],
            cwd=REPO,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=err,
            # A shell's background job ignores SIGINT, and so would this child: undo that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        # Both workers are inside a 25-episode job once they have loaded MuJoCo for their env.
        wait_until(
            lambda: sum(_maps_mujoco(pid) for pid in children(proc.pid)) == 2,
            "two workers rolling out episodes",
            180.0,
        )
        kids = children(proc.pid)  # the workers and multiprocessing's resource tracker
        os.kill(proc.pid, signum)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_all_die(kids)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == returncode, stderr
    if signum == signal.SIGINT:
        assert "run the same command again to resume" in stderr and "Traceback" not in stderr
