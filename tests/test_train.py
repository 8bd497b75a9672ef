"""The training loop: schedule, parameter groups, learning, exact resume, distributed equivalence,
and strict errors for missing or damaged checkpoints.

The end-to-end runs share one small collected dataset (cartpole, 8 episodes of 100 steps, one
held out) and one reference run; training runs are subprocesses with one thread each, so that the
float arithmetic (and so the bitwise comparisons) does not depend on the thread count.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gato.config import get_config
from gato.errors import UserError
from gato.model import Gato
from gato.optim import WARMUP_START_LR, lr_at, param_groups
from gato.train import FAULT_ENV, Plan, main, merge_domains
from gato.train_args import parse_args
from gato.train_log import TrainLogger, read_metrics

ROOT = Path(__file__).resolve().parents[1]
# 6 steps of 8 rows (2 micro-batches of 4 in one process), logged every step.
COMMON = [
    "--size", "debug", "--seq-len", "128", "--batch-size", "8", "--lr", "3e-3",
    "--warmup-steps", "2", "--steps", "6", "--log-every", "1", "--eval-every", "3",
    "--eval-batches", "1", "--ckpt-every", "3", "--num-workers", "0",
]  # fmt: skip


def _env(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop(FAULT_ENV, None)
    return {**env, **extra}


def _train(args: list[str], launcher=None, **env) -> subprocess.CompletedProcess:
    cmd = [*(launcher or [sys.executable, "-m"]), "gato.train", *args]
    return subprocess.run(cmd, cwd=ROOT, env=_env(**env), capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _losses(run_dir: Path, key: str = "loss") -> dict[int, float]:
    return {int(r["step"]): r[key] for r in read_metrics(run_dir) if key in r}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from gato.collect import collect_task
    from gato.envs import get_task

    root = tmp_path_factory.mktemp("data")
    collect_task(get_task("cartpole.balance"), 8, data_dir=root, workers=1, random_episodes=1,
                 progress=False, max_steps=100)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory) -> Path:
    """An uninterrupted 6-step run in one process (micro-batch 4, so 2 accumulation steps)."""
    run = tmp_path_factory.mktemp("reference") / "run"
    out = _train([*COMMON, "--data-dir", str(data_dir), "--run-dir", str(run),
                  "--micro-batch-size", "4"])  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return run


# ------------------------------------------------------------------------------ unit checks


def test_lr_schedule_key_steps():
    peak, w, d = 1e-4, 15000, 1_000_000
    assert lr_at(0, peak, w, d) == pytest.approx(WARMUP_START_LR)
    assert lr_at(w // 2, peak, w, d) == pytest.approx((WARMUP_START_LR + peak) / 2)
    assert lr_at(w, peak, w, d) == pytest.approx(peak)
    assert lr_at(w + d // 2, peak, w, d) == pytest.approx(0.55 * peak)  # cosine midpoint
    assert lr_at(w + d, peak, w, d) == pytest.approx(0.1 * peak)
    assert lr_at(w + 10 * d, peak, w, d) == pytest.approx(0.1 * peak)  # constant after
    steps = [lr_at(s, peak, w, d) for s in range(0, w + d + 1, 5000)]
    top = steps.index(max(steps))
    assert all(a < b for a, b in zip(steps[:top], steps[1 : top + 1], strict=True))
    assert all(a >= b for a, b in zip(steps[top:], steps[top + 1 :], strict=False))


def test_weight_decay_groups():
    model = Gato(get_config("debug"))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in no_decay["params"]}
    assert not decayed & kept and decayed | kept == set(names.values())
    assert "embed.wte.weight" in decayed  # the tied output matrix
    assert {"blocks.0.attn.qkv.weight", "blocks.1.mlp.proj.weight"} <= decayed
    assert "embed.patch_encoder.conv_in.weight" in decayed
    assert {"embed.wle.weight", "embed.patch_positions.rows.weight"} <= kept  # lookup tables
    assert {"blocks.0.ln_1.weight", "blocks.0.attn.qkv.bias", "ln_f.bias"} <= kept
    assert all(names[id(p)].endswith(("bias", "weight")) for p in no_decay["params"])


def test_plan_splits_the_global_batch():
    ranks = [Plan(micro=2, accum=3, rank=r, world_size=2)(step=7) for r in range(2)]
    rows = [i for plan in ranks for mb in plan for i in mb]
    assert rows == list(range(12)) and all(len(mb) == 2 for p in ranks for mb in p)
    with pytest.raises(SystemExit, match="multiple"):
        from gato.distributed import World
        from gato.train import make_plan

        make_plan(parse_args(["--batch-size", "10", "--micro-batch-size", "4"]),
                  World(0, 1, 0, torch.device("cpu")))  # fmt: skip


def test_merge_domains_weights_by_token_count():
    merged = merge_domains([{"dmc": [6.0, 3]}, {"dmc": [2.0, 1], "atari": [9.0, 3]}], "val")
    assert merged == {"val/atari": 3.0, "val/dmc": 2.0, "val": 17.0 / 7}


def test_metrics_csv_grows_columns_and_resumes(tmp_path):
    log = TrainLogger(tmp_path)
    log.log(1, {"loss": 2.0})
    log.log(2, {"loss": 1.5, "val_loss/dmc": 1.25})
    log.log(3, {"loss": 1.0 / 3})
    log.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[2]["loss"] == 1.0 / 3  # exact
    assert rows[1]["val_loss/dmc"] == 1.25 and (tmp_path / "loss.png").stat().st_size > 0
    TrainLogger(tmp_path, resume_step=2).close()  # rows after the checkpoint are dropped
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]


def test_missing_data_dir_says_make_data(tmp_path):
    with pytest.raises(UserError, match="make data"):
        main(["--size", "debug", "--data-dir", str(tmp_path / "nope"), "--run-dir",
              str(tmp_path / "run")])  # fmt: skip


# ------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_run_lowers_validation_loss(data_dir, tmp_path):
    args = ["--size", "debug", "--seq-len", "128", "--batch-size", "8", "--lr", "3e-3",
            "--steps", "40", "--log-every", "10", "--eval-every", "20", "--eval-batches", "2",
            "--ckpt-every", "40", "--num-workers", "0", "--data-dir", str(data_dir),
            "--run-dir", str(tmp_path / "run")]  # fmt: skip
    main(args)
    val = _losses(tmp_path / "run", "val_loss")
    assert set(val) == {0, 20, 40}
    assert val[0] > 9.0  # about ln(33025) = 10.4 at initialisation
    # Below ln(1024) = 6.9, the loss of knowing only that actions are continuous bins: the model
    # learned the held-out episode's actions, not just the token range.
    assert val[40] < 6.0 and val[40] < val[0] - 4.0, val
    assert (tmp_path / "run" / "loss.png").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step_00000040").is_dir()


@pytest.mark.slow
def test_packed_one_timestep_windows_learn_and_are_recorded(data_dir, tmp_path):
    """--window-steps 1: rows of 126 tokens hold 18 one-timestep cartpole windows; the run
    learns the held-out actions, its checkpoint records the window, and a resume with another
    packing is refused (it would not replay the same rows)."""
    import json

    run = tmp_path / "run"
    args = ["--size", "debug", "--seq-len", "126", "--batch-size", "8", "--lr", "3e-3",
            "--steps", "30", "--log-every", "10", "--eval-every", "30", "--eval-batches", "2",
            "--ckpt-every", "30", "--num-workers", "0", "--data-dir", str(data_dir),
            "--run-dir", str(run), "--window-steps", "1", "--prompt-prob", "0"]  # fmt: skip
    main(args)
    val = _losses(run, "val_loss")
    assert val[30] < 6.0 and val[30] < val[0] - 4.0, val
    state = json.loads((run / "checkpoints" / "step_00000030" / "state.json").read_text())
    assert state["sampler"]["window_tokens"] == {"cartpole.balance": 7}
    assert state["sampler"]["config"]["window_steps"] == 1
    longer = [*args[:-4], "--window-steps", "2", "--prompt-prob", "0", "--steps", "40",
              "--resume"]  # fmt: skip
    with pytest.raises(UserError, match="window_steps"):
        main(longer)


@pytest.mark.slow
def test_resume_after_sigkill_repeats_the_uninterrupted_run(data_dir, reference, tmp_path):
    run = tmp_path / "run"
    args = [*COMMON, "--data-dir", str(data_dir), "--run-dir", str(run),
            "--micro-batch-size", "4"]  # fmt: skip
    # Sampler workers on, as in real runs. The trainer's SIGKILL orphans its workers, so the run
    # gets its own session and the test ends that session's leftovers.
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gato.train", *args, "--num-workers", "1"], cwd=ROOT,
        env=_env(**{FAULT_ENV: "3"}), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        code = proc.wait(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
    assert code == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000003"]
    resumed = _train([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    got, want = _losses(run), _losses(reference)
    assert sorted(got) == list(range(1, 7))
    assert [got[s] for s in range(4, 7)] == [want[s] for s in range(4, 7)]  # bitwise
    assert _losses(run, "val_loss") == _losses(reference, "val_loss")


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one(data_dir, reference, tmp_path, parallel):
    """Same global batch of 8: 2 ranks x 2 micro-batches of 2 vs 1 process x 2 of 4."""
    run = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m"]  # fmt: skip
    args = [*COMMON, "--data-dir", str(data_dir), "--run-dir", str(run),
            "--micro-batch-size", "2", "--parallel", parallel]  # fmt: skip
    out = _train(args, launcher=torchrun)
    assert out.returncode == 0, out.stderr[-3000:]
    got, want = _losses(run), _losses(reference)
    assert sorted(got) == sorted(want) == list(range(1, 7))
    for step in want:
        assert math.isclose(got[step], want[step], abs_tol=1e-4), (step, got, want)
    val, val_ref = _losses(run, "val_loss"), _losses(reference, "val_loss")
    assert all(math.isclose(val[s], val_ref[s], abs_tol=1e-4) for s in val_ref)
    # The gathered checkpoint is the same model, whatever the wrapping.
    from safetensors.torch import load_file

    a = load_file(run / "checkpoints/step_00000006/model.safetensors")
    b = load_file(reference / "checkpoints/step_00000006/model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.mark.slow
def test_resume_is_strict(data_dir, reference, tmp_path):
    base = ["--size", "debug", "--seq-len", "128", "--batch-size", "8", "--steps", "8",
            "--num-workers", "0", "--data-dir", str(data_dir)]  # fmt: skip
    # No checkpoint at all: an error, not a fresh start.
    with pytest.raises(UserError, match="no checkpoint"):
        main([*base, "--run-dir", str(tmp_path / "empty"), "--resume"])
    # A fresh start must not write over a run that has checkpoints.
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    with pytest.raises(UserError, match="--resume"):
        main([*base, "--run-dir", str(run)])
    # A truncated newest checkpoint: an error naming the file, not a fallback to step 3.
    weights = run / "checkpoints/step_00000006/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(UserError, match="model.safetensors is truncated"):
        main([*base, "--run-dir", str(run), "--resume"])
    # A corrupted (same size, flipped byte) optimizer state.
    shutil.rmtree(run / "checkpoints/step_00000006")
    optim = run / "checkpoints/step_00000003/optimizer.pt"
    blob = bytearray(optim.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    optim.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="optimizer.pt is corrupted"):
        main([*base, "--run-dir", str(run), "--resume"])
    # A different model from the same run folder.
    shutil.copytree(reference / "checkpoints/step_00000006", run / "checkpoints/step_00000006")
    with pytest.raises(UserError, match="different model"):
        main([*base, "--run-dir", str(run), "--resume", "--seq-len", "64"])


def test_a_timestep_longer_than_the_context_is_refused_and_held_out_tasks_stay_out(
    data_dir, tmp_path
):
    """cartpole timesteps are 7 tokens: 6 is refused with one error line and exit 2, before any
    model exists; a held-out task's data in the folder is left out of the mix, said in a line."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(data_dir / "cartpole.balance", data / "cartpole.balance")
    shutil.copytree(data_dir / "cartpole.balance", data / "cartpole.swingup")  # as if collected
    run = tmp_path / "run"
    out = _train([*COMMON, "--seq-len", "6", "--data-dir", str(data), "--run-dir", str(run)])
    assert out.returncode == 2, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert errors == [
        "python -m gato.train: error: task 'cartpole.balance' has timesteps of 7 tokens "
        "(5 observation + '|' + 1 action), more than the model's 6-token context (block_size) "
        "[model: max_local_positions 256, context 6]; choose a larger size or a longer --seq-len / "
        "context"
    ]
    assert "Traceback" not in out.stderr and not run.exists()
    assert "held-out tasks cartpole.swingup are in" in out.stdout
