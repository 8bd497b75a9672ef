"""Issue 13 items 7 and 9: a folder that cannot be written is one line and exit 2, not a traceback.

Every writer takes its folder's lock first (gato/locks.py), so the lock is where a read-only run
or data folder is found: gato.locks.FolderError, a UserError naming the folder. The real case is
a read-only mount, made in a private mount namespace with `unshare -rm` (skipped with the reason
where the machine does not allow one); a file where the folder should be is the same error and
needs no privileges, so it is tested everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gato.errors import UserError, run_command
from gato.locks import FolderError, acquire

REPO = Path(__file__).resolve().parents[1]


def test_a_file_in_the_way_is_a_folder_error(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(FolderError, match=r"gato.test: cannot write into .*a-file/run \(Not a"):
        acquire(tmp_path / "a-file" / "run", "gato.test")
    assert issubclass(FolderError, UserError)


def test_train_into_an_unwritable_run_folder_is_one_line(tmp_path, capsys):
    from gato import train
    from gato.collect import collect_task
    from gato.envs import get_task

    data = tmp_path / "data"
    collect_task(get_task("cartpole.balance"), 2, data_dir=data, workers=1, random_episodes=1,
                 progress=False, max_steps=20)  # fmt: skip
    (tmp_path / "a-file").write_text("not a folder")
    argv = ["--size", "tiny", "--seq-len", "64", "--batch-size", "2", "--steps", "1",
            "--eval-batches", "0", "--num-workers", "0", "--device", "cpu",
            "--data-dir", str(data), "--run-dir", str(tmp_path / "a-file" / "run")]  # fmt: skip
    capsys.readouterr()
    assert run_command(train.main, argv, "python -m gato.train") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("python -m gato.train: error: gato.train: cannot write into "), err


# A read-only bind mount of each folder, then the command; its stderr and status into OUT.
SCRIPT = """
set -e
for d in "$RO_RUN" "$RO_DATA"; do mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; done
set +e
"$@" 2> "$OUT/stderr"
echo $? > "$OUT/rc"
"""


def _read_only(tmp_path: Path, *command: str) -> tuple[int, str]:
    """(exit status, stderr) of `python -m ...command` with tmp_path/ro-run and tmp_path/ro-data
    mounted read-only."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1): cannot mount a folder read-only here")
    probe = subprocess.run(["unshare", "-rm", "mount", "--bind", str(tmp_path), str(tmp_path)],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot bind-mount here (unshare -rm: {probe.stderr.strip()})")
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OUT": str(out),
           "RO_RUN": str(tmp_path / "ro-run"), "RO_DATA": str(tmp_path / "ro-data")}  # fmt: skip
    env.pop("GATO_DEBUG", None)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", SCRIPT, "sh", sys.executable, "-m",
                           *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr  # the mounts worked
    return int((out / "rc").read_text()), (out / "stderr").read_text()


@pytest.mark.slow  # three interpreters importing torch and the envs
def test_read_only_run_and_data_folders(tmp_path):
    from gato.collect import collect_task
    from gato.envs import get_task

    (tmp_path / "ro-run").mkdir()
    collect_task(get_task("cartpole.balance"), 2, data_dir=tmp_path / "ro-data", workers=1,
                 random_episodes=1, progress=False, max_steps=20)  # fmt: skip
    train = ["gato.train", "--size", "tiny", "--seq-len", "64", "--batch-size", "2",
             "--steps", "1", "--eval-batches", "0", "--num-workers", "0"]  # fmt: skip
    cases = [
        # a read-only run folder; the data folder is read-only too, and reading it is fine
        ([*train, "--data-dir", "ro-data", "--run-dir", "ro-run/run"], "gato.train", "ro-run/run"),
        # more episodes into a read-only data folder
        (
            [
                "gato.collect",
                "--task",
                "cartpole.balance",
                "--episodes",
                "4",
                "--data-dir",
                "ro-data",
                "--no-progress",
            ],
            "gato.collect",
            "ro-data/cartpole.balance",
        ),  # fmt: skip
        (
            [
                "gato.finetune",
                "--task",
                "cartpole.balance",
                "--scratch",
                "--size",
                "tiny",
                "--demos",
                "1",
                "--data-dir",
                "ro-data",
                "--run-dir",
                "ro-run/ft",
            ],
            "gato.finetune",
            "ro-run/ft",
        ),  # fmt: skip
    ]
    for command, module, folder in cases:
        rc, err = _read_only(tmp_path, *command)
        lines = err.strip().splitlines()
        assert rc == 2 and "Traceback" not in err and len(lines) == 1, (command, err)
        assert lines[0].startswith(f"python -m {module}: error: "), err
        assert f"cannot write into {folder}" in lines[0] and "Read-only file system" in lines[0]
    assert not (tmp_path / "ro-run" / "run").exists()
