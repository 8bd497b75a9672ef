"""`python -m gato.finetune` and experiments/fig9.py: the demonstration budget, the starting
weights, rollout evaluation with a kept best checkpoint, the outputs, and the errors.

Everything runs on a small cartpole.balance collection in a temporary folder (5 episodes of 40
steps) with a debug-size model, a few steps of a tiny batch and 1-step-long rollouts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gato import finetune as FT
from gato.checkpoint import load_model, save_checkpoint
from gato.config import get_config
from gato.distributed import World
from gato.errors import UserError
from gato.finetune_args import FinetuneArgs, build_parser, parse_args, to_train_args
from gato.model import Gato
from gato.train_log import read_metrics

ROOT = Path(__file__).resolve().parents[1]
TASK = "cartpole.balance"
# 2 steps of 2 rows, rollouts at steps 0 and 2 (1 rollout of 3 agent steps, in this process).
QUICK = [
    "--task", TASK, "--steps", "2", "--batch-size", "2", "--eval-every", "2",
    "--eval-episodes", "1", "--eval-workers", "1", "--eval-max-steps", "3", "--log-every", "1",
    "--device", "cpu",
]  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from gato.collect import collect_task
    from gato.envs import get_task

    root = tmp_path_factory.mktemp("data")
    collect_task(get_task(TASK), 5, data_dir=root, workers=1, random_episodes=1,
                 progress=False, max_steps=40)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A 'pretrained' debug checkpoint (random weights; what matters is that they are loaded)."""
    run = tmp_path_factory.mktemp("pretrained") / "run"
    torch.manual_seed(123)
    config = get_config("debug", block_size=64)
    save_checkpoint(run, 7, Gato(config).state_dict(), config,
                    {"sampler": {"tasks": ["metaworld.reach"]}})  # fmt: skip
    return run


def test_help_explains_every_flag():
    text = build_parser().format_help()
    for name in FinetuneArgs.__dataclass_fields__:
        assert f"--{name.replace('_', '-')}" in text
    defaults = parse_args(["--scratch"])
    assert (defaults.lr, defaults.batch_size, defaults.steps, defaults.dropout) == (
        1e-5,
        64,
        10000,
        0.1,
    )
    with pytest.raises(SystemExit):
        parse_args([])  # neither --ckpt nor --scratch


def test_trainer_uses_only_the_first_demos_and_the_pretrained_weights(
    data_dir, pretrained, tmp_path
):
    run = str(tmp_path / "run")
    args = parse_args([*QUICK, "--demos", "3", "--ckpt", str(pretrained),
                       "--data-dir", str(data_dir), "--run-dir", run])  # fmt: skip
    chosen = FT.demo_view(TASK, str(data_dir), 3, tmp_path / "run" / "demos")
    assert chosen == [0, 1, 2]
    base_model, ckpt = load_model(pretrained)
    trainer = FT.FinetuneTrainer(
        to_train_args(args, str(tmp_path / "run" / "demos"), "debug"),
        World(0, 1, 0, torch.device("cpu")),
        args,
        ckpt.config,
        ckpt.model_state,
    )
    assert trainer.sampler.state_dict()["episodes"] == {TASK: [0, 1, 2]}
    assert trainer.val_sampler is None  # the whole budget is training data
    rows = {trainer.sampler.describe(s, i).episode for s in range(20) for i in range(4)}
    assert rows == {0, 1, 2}
    assert trainer.config.dropout == 0.1 and trainer.config.block_size == 64
    mine = trainer.model.state_dict()
    for name, value in base_model.state_dict().items():
        assert torch.equal(mine[name], value), name
    assert (trainer.warmup, trainer.decay) == (0, 0)  # a constant learning rate


def test_finetune_from_pretrained_writes_best_checkpoint_curve_and_results(
    data_dir, pretrained, tmp_path
):
    run = tmp_path / "run"
    result = FT.main([*QUICK, "--demos", "2", "--ckpt", str(pretrained),
                      "--data-dir", str(data_dir), "--run-dir", str(run)])  # fmt: skip
    assert result["init"] == "pretrained" and result["prompted"]
    assert result["demo_indices"] == [0, 1]
    assert [h["step"] for h in result["curve"]] == [0, 2]
    best = result["best"]
    assert best["step"] in (0, 2) and best["normalized_score"] is not None
    model, ckpt = load_model(run / "best")
    assert ckpt.step == best["step"] and ckpt.state["tasks"] == [TASK]
    assert ckpt.state["sampler"]["episodes"] == {TASK: [0, 1]}
    for name in (FT.RESULT_NAME, FT.PLOT_NAME, FT.EVAL_CSV, "metrics.csv"):
        assert (run / name).stat().st_size > 0, name
    saved = json.loads((run / FT.RESULT_NAME).read_text())
    assert saved["complete"] and saved["best"] == best
    metrics = read_metrics(run)
    assert {r["lr"] for r in metrics if "lr" in r} == {1e-5}
    assert [r["step"] for r in metrics if "eval/score" in r] == [0, 2]
    assert not (run / "eval").exists()  # the scratch evaluation checkpoint is cleaned up
    with pytest.raises(SystemExit, match="already holds a run"):
        FT.main([*QUICK, "--demos", "2", "--ckpt", str(pretrained),
                 "--data-dir", str(data_dir), "--run-dir", str(run)])  # fmt: skip


def test_finetune_from_scratch_with_one_demo_has_no_prompts(data_dir, tmp_path):
    run = tmp_path / "run"
    result = FT.main([*QUICK, "--demos", "1", "--scratch", "--size", "debug", "--seq-len", "64",
                      "--data-dir", str(data_dir), "--run-dir", str(run),
                      "--no-keep-last"])  # fmt: skip
    assert result["init"] == "scratch" and not result["prompted"]
    assert result["demo_indices"] == [0]
    assert result["config"]["n_layer"] == get_config("debug").n_layer
    assert (run / "best").is_dir() and not (run / "checkpoints").exists()


def test_too_few_demonstrations_names_the_collect_command(data_dir, tmp_path):
    with pytest.raises(UserError) as e:
        FT.main([*QUICK, "--demos", "9", "--scratch", "--size", "debug",
                 "--data-dir", str(data_dir), "--run-dir", str(tmp_path / "run")])  # fmt: skip
    assert f"python -m gato.collect --task {TASK} --episodes" in str(e.value)
    assert "fewer than --demos 9" in str(e.value)


def test_suggest_episodes_scales_with_the_filter_share():
    assert FT.suggest_episodes({"episodes": 20, "filtered_episodes": 17}, 100) == 142
    assert FT.suggest_episodes({"episodes": 0, "filtered_episodes": 0}, 10) == 24


def test_collect_extends_the_data_to_the_budget(data_dir, tmp_path):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    meta = FT.ensure_demos(TASK, str(copy), 7, collect=True, workers=1)
    assert meta["filtered_episodes"] >= 7 and meta["max_steps"] == 40


@pytest.mark.slow  # 4 fine-tuning runs and the figure, in a subprocess
def test_fig9_end_to_end(data_dir, pretrained, tmp_path):
    cmd = [sys.executable, "experiments/fig9.py", "--ckpt", str(pretrained), "--task", TASK,
           "--demos", "1,2,50", "--seeds", "1", "--steps", "2", "--eval-every", "2",
           "--eval-episodes", "1", "--data-dir", str(data_dir),
           "--runs-dir", str(tmp_path / "runs"),
           "--out", str(tmp_path / "out"), "--batch-size", "2", "--eval-workers", "1",
           "--eval-max-steps", "3", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    stem = tmp_path / "out" / f"fig9_{TASK}"

    def rows_of(extra: list[str]) -> tuple[set, str]:
        out = subprocess.run([*cmd, *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        report = json.loads(Path(f"{stem}.json").read_text())
        assert report["skipped"] and report["skipped"][0].startswith("50:")
        return {(r["init"], r["demos"]) for r in report["rows"]}, out.stdout

    # The sweep split between two processes (as on two cores): each half runs only its own init.
    assert rows_of(["--no-scratch"])[0] == {("pretrained", 1), ("pretrained", 2)}
    assert rows_of(["--no-pretrained"])[0] == {("scratch", 1), ("scratch", 2)}
    # The whole sweep then reuses all four finished runs instead of training again.
    rows, stdout = rows_of([])
    assert rows == {("pretrained", 1), ("scratch", 1), ("pretrained", 2), ("scratch", 2)}
    assert stdout.count("fig9: reusing") == 4 and "fig9: scratch" not in stdout
    assert "| 2 |" in Path(f"{stem}.md").read_text()
    assert Path(f"{stem}.png").stat().st_size > 0
    # ... but never a finished run made with other settings.
    other = subprocess.run([*cmd, "--lr", "1e-4"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert other.returncode != 0 and "with other settings (lr)" in other.stderr


@pytest.mark.parametrize("state", [{"sampler": {"tasks": [TASK]}}, {"tasks": [TASK]}])
def test_finetuning_on_a_pretrained_task_is_refused_unless_forced(
    data_dir, tmp_path, capsys, state
):
    """gato.train records its tasks in state['sampler']['tasks'], fine-tuning also in 'tasks'."""
    ckpt = tmp_path / "pretrained"
    config = get_config("debug", block_size=64)
    save_checkpoint(ckpt, 3, Gato(config).state_dict(), config, state)
    run = tmp_path / "run"
    base = [*QUICK, "--demos", "9", "--ckpt", str(ckpt), "--data-dir", str(data_dir),
            "--run-dir", str(run)]  # fmt: skip
    with pytest.raises(UserError) as e:
        FT.main(base)
    assert not run.exists()
    assert f"was pretrained on {TASK}" in str(e.value) and "--force" in str(e.value)
    # Forced, the check passes and the run goes on to its next check (9 demonstrations).
    with pytest.raises(UserError, match="fewer than --demos 9"):
        FT.main([*base, "--force"])


def test_a_timestep_longer_than_the_context_is_refused(data_dir, tmp_path):
    with pytest.raises(UserError) as e:
        FT.main([*QUICK, "--demos", "2", "--scratch", "--size", "debug", "--seq-len", "6",
                 "--data-dir", str(data_dir), "--run-dir", str(tmp_path / "run")])  # fmt: skip
    err = str(e.value)
    assert err.startswith(f"task '{TASK}' has timesteps of 7 tokens")
    assert "6-token context (block_size)" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_full_disk_while_saving_is_not_blamed_on_the_input_checkpoint(
    data_dir, pretrained, tmp_path, monkeypatch
):
    """Issue 13 item 4: a CheckpointError saving the run's own checkpoint (a full disk) names
    the run's folder and the space; only a failure loading --ckpt is prefixed with --ckpt."""
    import shutil as real_shutil

    from gato import checkpoint

    run = tmp_path / "run"
    usage = real_shutil.disk_usage

    def disk_usage(path):  # the run's disk is full; every other disk (--ckpt's) is not
        free = 0 if str(path).startswith(str(run)) else usage(path).free
        return usage(path)._replace(free=free)

    monkeypatch.setattr(checkpoint.shutil, "disk_usage", disk_usage)
    with pytest.raises(UserError) as e:
        FT.main([*QUICK, "--demos", "2", "--ckpt", str(pretrained),
                 "--data-dir", str(data_dir), "--run-dir", str(run)])  # fmt: skip
    message = str(e.value)
    assert message.startswith(f"not enough free space in {run}/eval/checkpoints"), message
    assert "--ckpt" not in message and str(pretrained) not in message
    # A corrupt --ckpt still names the flag and the path.
    monkeypatch.undo()
    corrupt = tmp_path / "corrupt"
    real_shutil.copytree(pretrained, corrupt)
    weights = next(corrupt.rglob("model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(UserError, match=f"^--ckpt {corrupt}: .*model.safetensors is truncated"):
        FT.main([*QUICK, "--demos", "2", "--ckpt", str(corrupt), "--data-dir", str(data_dir),
                 "--run-dir", str(tmp_path / "run2")])  # fmt: skip
