"""A short `debug` training run on generated scenes, the shipped text corpus and a control task
together (issue 14): the mixture trains end to end and logs a loss per domain."""

from __future__ import annotations

import pytest

from gato.train import main
from gato.train_log import read_metrics


@pytest.mark.slow
def test_debug_run_on_scenes_text_and_control(tmp_path):
    from gato.collect import collect_task
    from gato.envs import get_task

    data = tmp_path / "data"
    collect_task(get_task("cartpole.balance"), 3, data_dir=data, workers=1, random_episodes=1,
                 progress=False, max_steps=60)  # fmt: skip
    run = tmp_path / "run"
    main([
        "--size", "debug", "--seq-len", "192", "--batch-size", "6", "--steps", "3",
        "--log-every", "1", "--eval-every", "3", "--eval-batches", "1", "--ckpt-every", "3",
        "--num-workers", "0", "--data-dir", str(data), "--run-dir", str(run),
        "--tasks", "cartpole.balance,vl.scenes,text.corpus",
        "--task-weights", "dmc=1,vl=1,text=1",
    ])  # fmt: skip
    rows = read_metrics(run)
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 3 and all(8.0 < x < 12.0 for x in losses), losses
    logged = {k for r in rows for k in r}
    assert {"val_loss/vl", "val_loss/text", "val_loss/dmc", "loss/vl"} <= logged, sorted(logged)
    assert (run / "checkpoints" / "step_00000003").is_dir()
