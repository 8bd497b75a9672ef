"""Checkpoints under faults (issue 13 item 4): a missing or broken manifest is an error, never a
fallback; a writer killed mid-write leaves a temporary folder that the next save removes; a full
disk is a clear error before (or while) writing; loading without the optimizer neither reads nor
verifies it; every file gets one mode."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import gato.checkpoint as ck
from gato.checkpoint import (
    KILL_IN_WRITE_ENV,
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from gato.config import get_config
from gato.errors import UserError
from gato.model import Gato

ROOT = Path(__file__).resolve().parents[1]


def _model_and_optimizer():
    torch.manual_seed(0)
    config = get_config("tiny")
    model = Gato(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    opt.step()
    return config, model, opt


@pytest.fixture(scope="module")
def parts():
    return _model_and_optimizer()


def _save(run, step, parts, **kw):
    config, model, opt = parts
    return save_checkpoint(run, step, model.state_dict(), config, {"x": 1}, opt.state_dict(), **kw)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_checkpoint_errors_are_user_errors():
    assert issubclass(CheckpointError, UserError) and issubclass(CheckpointError, RuntimeError)


def test_a_removed_or_invalid_manifest_is_an_error_not_a_fallback(tmp_path, parts):
    run = tmp_path / "runs" / "a"
    _save(run, 1, parts)
    newest = _save(run, 2, parts)
    (newest / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"step_00000002 is not a complete checkpoint"):
        load_checkpoint(run)
    # Discovery across runs picks it too (and loading it says why), never the older step.
    assert ck.newest_checkpoint(tmp_path / "runs") == newest
    for bad in ("[]", '{"model.safetensors": 3}', '{"config.json": {"bytes": 1, "sha256": ""}}'):
        (newest / "manifest.json").write_text(bad)
        with pytest.raises(CheckpointError, match="manifest.json is corrupted"):
            load_checkpoint(run)


def test_loading_without_the_optimizer_neither_reads_nor_verifies_it(tmp_path, parts):
    path = _save(tmp_path, 3, parts)
    blob = bytearray((path / "optimizer.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / "optimizer.pt").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="optimizer.pt is corrupted"):
        load_checkpoint(path)
    ckpt = load_checkpoint(path, with_optimizer=False)
    assert ckpt.optimizer_state is None and ckpt.step == 3
    (path / "optimizer.pt").unlink()  # even a missing one: deploy and finetune do not need it
    model, _ = load_model(path)
    assert not model.training
    with pytest.raises(CheckpointError, match="missing optimizer.pt"):
        load_checkpoint(path)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_every_file_gets_the_same_mode(tmp_path, parts, umask):
    old = os.umask(umask)
    try:
        path = _save(tmp_path, 4, parts)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()}
    assert set(modes) == {"model.safetensors", "config.json", "state.json", "optimizer.pt",
                          "manifest.json"}  # fmt: skip
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_dead_writers_temporary_folders_are_removed_at_the_next_save(tmp_path, parts):
    root = tmp_path / "checkpoints"
    dead = root / f".tmp-step_00000009-{_dead_pid()}"
    dead.mkdir(parents=True)
    (dead / "model.safetensors").write_bytes(b"\0" * 1000)
    mine = root / f".tmp-step_00000008-{os.getpid()}"  # this process's own failed save
    mine.mkdir()
    live = root / f".tmp-step_00000007-{os.getppid()}"  # a live writer's: left alone
    live.mkdir()
    _save(tmp_path, 5, parts)
    assert not dead.exists() and not mine.exists() and live.exists()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000005"]


def test_too_little_free_space_is_refused_before_writing(tmp_path, parts, monkeypatch):
    _save(tmp_path, 1, parts)
    config, model, opt = parts
    need = ck.tensor_bytes(model.state_dict()) + ck.tensor_bytes(opt.state_dict())
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(ck.shutil, "disk_usage", lambda p: usage._replace(free=need // 2))
    with pytest.raises(CheckpointError, match=r"not enough free space in .* step 2: it needs"):
        _save(tmp_path, 2, parts)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_00000001"]
    # With room for the estimate, it is written.
    monkeypatch.setattr(ck.shutil, "disk_usage", lambda p: usage._replace(free=2 * need))
    _save(tmp_path, 2, parts)


def test_a_write_that_fills_the_disk_is_a_clear_error_and_leaves_nothing(tmp_path, parts,
                                                                         monkeypatch):  # fmt: skip
    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64")

    def enospc(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", enospc)
    with pytest.raises(CheckpointError, match="filled up while writing the checkpoint of step 6"):
        _save(tmp_path, 6, parts)
    assert list((tmp_path / "checkpoints").iterdir()) == []
    monkeypatch.setattr(ck.torch, "save", full)  # another failure stays what it is
    with pytest.raises(RuntimeError, match="inline_container") as info:
        _save(tmp_path, 6, parts)
    assert not isinstance(info.value, CheckpointError)
    assert list((tmp_path / "checkpoints").iterdir()) == []


_SAVE_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from gato.checkpoint import save_checkpoint
    from gato.config import get_config
    from gato.model import Gato
    run, step, space_check = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "on"
    if not space_check:  # to reach the real ENOSPC of the write itself
        import gato.checkpoint as ck
        ck._check_space = lambda *a: None
    torch.manual_seed(0)
    model = Gato(get_config("debug"))
    opt = torch.optim.AdamW(model.parameters())
    sum(p.sum() for p in model.parameters()).backward()
    opt.step()
    try:
        save_checkpoint(run, step, model.state_dict(), model.config, {}, opt.state_dict())
        print("saved")
    finally:  # what a failed save left behind (a tmpfs is gone once this process exits)
        print("left:", sorted(os.listdir(run + "/checkpoints")), flush=True)
    """
)


def _script_env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}
    env.pop(KILL_IN_WRITE_ENV, None)
    return {**env, **extra}


def test_a_writer_killed_mid_write_leaves_no_checkpoint_and_the_next_save_cleans_up(
    tmp_path, parts
):
    script = tmp_path / "save.py"
    script.write_text(_SAVE_SCRIPT)
    _save(tmp_path / "run", 1, parts)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), "2", "on"],
                          env=_script_env(**{KILL_IN_WRITE_ENV: "2"}), capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    root = tmp_path / "run" / "checkpoints"
    left = sorted(p.name for p in root.iterdir())
    assert left[0].startswith(".tmp-step_00000002-") and left[1:] == ["step_00000001"], left
    assert (root / left[0] / "model.safetensors").is_file()  # it died with the weights written
    assert load_checkpoint(tmp_path / "run").step == 1  # the half-written one is invisible
    _save(tmp_path / "run", 2, parts)
    assert sorted(p.name for p in root.iterdir()) == ["step_00000001", "step_00000002"]


def _in_small_tmpfs(tmp_path: Path, megabytes: int, command: list[str]):
    """Run `command` with a `megabytes` tmpfs mounted at tmp_path/disk (a private mount
    namespace), or skip the test where this machine does not allow one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1): cannot mount a small tmpfs to fill")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m none {disk}"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (unshare -rm: {probe.stderr.strip()})")
    shell = f'mount -t tmpfs -o size={megabytes}m none {disk} && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", shell, "sh", *command],
                          env=_script_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("space_check", ["on", "off"])
def test_a_real_full_disk_is_a_clear_error(tmp_path, space_check):
    """The debug model's checkpoint (~34 MB with its optimizer) on a 16 MB tmpfs: refused before
    writing, or (the check bypassed) the real ENOSPC of the write, named as a full disk."""
    script = tmp_path / "save.py"
    script.write_text(_SAVE_SCRIPT)
    run = tmp_path / "disk" / "run"
    out = _in_small_tmpfs(tmp_path, 16, [sys.executable, str(script), str(run), "3", space_check])
    assert out.returncode == 1 and "saved" not in out.stdout, out.stderr[-2000:]
    assert "left: []" in out.stdout  # no half-written folder
    last = out.stderr.strip().splitlines()[-1]
    if space_check == "on":
        assert "CheckpointError: not enough free space in" in last and "MiB are free" in last
    else:
        assert "CheckpointError: the disk of" in last and "filled up" in last, last


@pytest.mark.slow
def test_training_killed_mid_checkpoint_resumes_and_a_removed_manifest_stops_resume(tmp_path):
    """gato.train killed by SIGKILL while writing step 4: resume continues from step 2 and its
    next save removes the dead writer's folder. Then, with step 4's manifest removed, resume is
    an error naming it, and neither step is touched (it used to fall back to step 2, then write
    over step 4)."""
    from gato.collect import collect_task
    from gato.envs import get_task

    data = tmp_path / "data"
    collect_task(get_task("cartpole.balance"), 4, data_dir=data, workers=1, random_episodes=1,
                 progress=False, max_steps=60)  # fmt: skip
    run = tmp_path / "run"
    args = ["--size", "tiny", "--seq-len", "64", "--batch-size", "2", "--steps", "4",
            "--ckpt-every", "2", "--eval-batches", "0", "--num-workers", "0",
            "--data-dir", str(data), "--run-dir", str(run)]  # fmt: skip

    def train(*extra, **env):
        return subprocess.run([sys.executable, "-m", "gato.train", *args, *extra], cwd=ROOT,
                              env=_script_env(**env), capture_output=True, text=True,
                              timeout=300)  # fmt: skip

    killed = train(**{KILL_IN_WRITE_ENV: "4"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    root = run / "checkpoints"
    names = sorted(p.name for p in root.iterdir())
    assert names[0].startswith(".tmp-step_00000004-") and names[1:] == ["step_00000002"], names
    resumed = train("--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "step_00000002 (step 2)" in resumed.stdout
    assert sorted(p.name for p in root.iterdir()) == ["step_00000002", "step_00000004"]

    (root / "step_00000004" / "manifest.json").unlink()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    again = train("--resume", "--steps", "6")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines()[-1] == (
        f"python -m gato.train: error: cannot resume from {run}: {root / 'step_00000004'} "
        "is not a complete checkpoint: manifest.json is missing"
    )
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
