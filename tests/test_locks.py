"""gato.locks (issue 13 item 3): one writer per folder; the second gets one line naming the
holder's pid; a dead holder's lock is taken over; and the commands take it: two collections into
one task folder, two trainings into one run folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gato.errors import UserError
from gato.locks import LOCK_NAME, LockError, acquire, folder_lock, pid_alive, read_holder, release

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# A second process: lock FOLDER; HOLD = seconds to hold it, or "kill" to die holding it.
_LOCKER = textwrap.dedent(
    """
    import os, signal, sys, time
    from gato.locks import LockError, acquire
    folder, hold = sys.argv[1], sys.argv[2]
    try:
        acquire(folder, "locker")
    except LockError as e:
        print(e, flush=True)
        sys.exit(2)
    print("locked", flush=True)
    if hold == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(hold))
    """
)


def _locker(folder: Path, hold: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _LOCKER, str(folder), hold], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)  # fmt: skip


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_lock_errors_are_user_errors():
    assert issubclass(LockError, UserError)


def test_a_second_writer_gets_one_line_naming_the_holder(tmp_path):
    holder = _locker(tmp_path / "f", "60")
    try:
        assert holder.stdout.readline().strip() == "locked"
        info = read_holder(tmp_path / "f" / LOCK_NAME)
        assert info["pid"] == holder.pid and info["host"]
        with pytest.raises(LockError) as err:
            acquire(tmp_path / "f", "gato.test")
        message = str(err.value)
        assert "\n" not in message and f"pid {holder.pid}" in message, message
        assert message.startswith(f"gato.test: {tmp_path / 'f'} is in use by another writer")
        assert f"kill {holder.pid}" in message
        second = _locker(tmp_path / "f", "0")  # another process, refused the same way
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 2 and f"pid {holder.pid}" in out
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lock_is_taken_over(tmp_path, capfd):
    dead = _locker(tmp_path / "f", "kill")
    dead.wait(timeout=60)
    assert dead.returncode == -signal.SIGKILL
    assert read_holder(tmp_path / "f" / LOCK_NAME)["pid"] == dead.pid  # left behind
    assert not pid_alive(dead.pid)
    path = acquire(tmp_path / "f", "gato.test")
    try:
        assert read_holder(path)["pid"] == os.getpid()
        err = capfd.readouterr().err
        assert f"taking over the stale lock of {tmp_path / 'f'} (pid {dead.pid}" in err, err
        assert "no longer running" in err
    finally:
        release(path)
    # A lock file written by hand (no flock behind it) with a dead pid is stale too.
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": "h"}))
    with folder_lock(tmp_path / "g", "gato.test"):
        assert read_holder(tmp_path / "g" / LOCK_NAME)["pid"] == os.getpid()
    assert not (tmp_path / "g" / LOCK_NAME).exists()


def test_locks_are_reentrant_and_released_by_the_last_holder(tmp_path):
    first = acquire(tmp_path, "outer")
    assert acquire(tmp_path, "inner") == first
    release(first)  # still held once: another process is refused
    other = _locker(tmp_path, "0")
    out, _ = other.communicate(timeout=60)
    assert other.returncode == 2 and f"pid {os.getpid()}" in out
    release(first)
    assert not first.exists()
    other = _locker(tmp_path, "0")
    out, _ = other.communicate(timeout=60)
    assert other.returncode == 0 and out.strip() == "locked"


def test_pid_alive():
    assert pid_alive(os.getpid()) and not pid_alive(0) and not pid_alive(-5)


# --------------------------------------------------------------------------- the commands


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *cmd], cwd=REPO, env=ENV,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def _end(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


ERROR_LINE = re.compile(r"^python -m [\w.]+: error:")


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    # "python -m gato.X: error: ...": every command's __main__ runs through gato.errors
    errors = [line for line in stderr.splitlines() if ERROR_LINE.match(line)]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


@pytest.mark.slow
def test_two_collections_into_one_task_folder(tmp_path):
    """The second is refused with one line naming the first's pid; after the first is killed by
    SIGKILL, the rerun takes the stale lock over and completes the collection."""
    cmd = ["gato.collect", "--task", "cartpole.balance", "--episodes", "400", "--workers", "1",
           "--data-dir", str(tmp_path), "--no-progress", "--random-episodes", "1"]  # fmt: skip
    first = _start(cmd, tmp_path / "first.log")
    lock = tmp_path / "cartpole.balance" / LOCK_NAME
    try:
        _wait_for(lambda: read_holder(lock).get("pid") == first.pid, "the first collection's lock")
        second = subprocess.run([sys.executable, "-m", *cmd], cwd=REPO, env=ENV, text=True,
                                capture_output=True, timeout=120)  # fmt: skip
        assert second.returncode == 2
        line = _one_error_line(second.stderr)
        assert f"is in use by another writer (pid {first.pid}" in line, line
        _wait_for(lambda: list(lock.parent.glob("episodes-*.parquet")), "a first shard", 120)
    finally:
        _end(first)  # kill -9 during collection
    assert read_holder(lock).get("pid") == first.pid  # a stale lock is left behind
    rerun = subprocess.run([sys.executable, "-m", *cmd[:4], "30", *cmd[5:]], cwd=REPO, env=ENV,
                           text=True, capture_output=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"taking over the stale lock of {lock.parent} (pid {first.pid}" in rerun.stderr
    meta = json.loads((lock.parent / "metadata.json").read_text())
    # The killed run's shards are kept (at least 25 episodes, one shard) and the rest collected.
    assert meta["complete"] and meta["episode_indices"] == list(range(max(30, meta["episodes"])))
    assert not lock.exists()


def _tiny_data(root: Path) -> Path:
    from gato.collect import collect_task
    from gato.envs import get_task

    collect_task(get_task("cartpole.balance"), 4, data_dir=root, workers=1, random_episodes=1,
                 progress=False, max_steps=60)  # fmt: skip
    return root


@pytest.mark.slow
def test_two_trainings_into_one_run_folder(tmp_path):
    """The second exits 2 with one line naming the first's pid, before writing anything."""
    data = _tiny_data(tmp_path / "data")
    run = tmp_path / "run"
    cmd = ["gato.train", "--size", "tiny", "--seq-len", "64", "--batch-size", "2",
           "--steps", "100000", "--eval-batches", "0", "--ckpt-every", "100000",
           "--num-workers", "0", "--data-dir", str(data), "--run-dir", str(run)]  # fmt: skip
    first = _start(cmd, tmp_path / "first.log")
    try:
        _wait_for(lambda: read_holder(run / LOCK_NAME).get("pid") == first.pid, "the lock", 120)
        _wait_for(lambda: (run / "args.json").is_file(), "the first run's args.json", 120)
        before = (run / "args.json").read_text()
        second = subprocess.run([sys.executable, "-m", *cmd, "--seed", "7"], cwd=REPO, env=ENV,
                                text=True, capture_output=True, timeout=300)  # fmt: skip
        assert second.returncode == 2, second.stderr[-3000:]
        line = _one_error_line(second.stderr)
        assert f"gato.train: {run} is in use by another writer (pid {first.pid}" in line, line
        assert (run / "args.json").read_text() == before  # the second wrote nothing
        assert first.poll() is None  # and the first goes on
    finally:
        _end(first)
