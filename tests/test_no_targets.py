"""A training batch with no loss target is an error naming the cause (issue 13 item 8), not a
step logged as `loss 0.0000` that still moves the weights.

gato.layout_check already refuses a --seq-len shorter than one timestep; a window of exactly one
cartpole timestep (7 tokens) passes it, and a row whose window starts at the action token has no
target (the first token of a row is never predicted), so one-row batches of 7 tokens hit an
empty batch within a few steps.
"""

from __future__ import annotations

import pytest

from gato import distributed as D
from gato.errors import run_command
from gato.train import Trainer, main
from gato.train_args import parse_args
from gato.train_log import read_metrics
from gato.train_loss import NoTargetsError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from gato.collect import collect_task
    from gato.envs import get_task

    root = tmp_path_factory.mktemp("data")
    collect_task(get_task("cartpole.balance"), 4, data_dir=root, workers=1, random_episodes=1,
                 progress=False, max_steps=60)  # fmt: skip
    return root


def _args(data_dir, run_dir, steps: int) -> list[str]:
    return ["--size", "tiny", "--seq-len", "7", "--batch-size", "1", "--steps", str(steps),
            "--warmup-steps", "1", "--log-every", "1", "--eval-batches", "0",
            "--ckpt-every", "1000", "--num-workers", "0", "--data-dir", str(data_dir),
            "--run-dir", str(run_dir)]  # fmt: skip


def test_an_empty_batch_stops_training_with_the_cause(data_dir, tmp_path, capsys):
    world = D.init_distributed("cpu")
    trainer = Trainer(parse_args(_args(data_dir, tmp_path / "probe", 1)), world)

    def targets(step: int) -> int:
        return sum(
            int(trainer.sampler.rows(step, list(ix)).batch.loss_mask[:, 1:].sum())
            for ix in trainer.plan(step)
        )

    empty = next(s for s in range(300) if targets(s) == 0)
    assert all(targets(s) > 0 for s in range(empty))
    run = tmp_path / "run"
    # As `python -m gato.train` runs it: one line, exit 2.
    assert run_command(main, _args(data_dir, run, empty + 5), "python -m gato.train") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        f"python -m gato.train: error: step {empty + 1}: the batch (1 rows of 7 tokens, tasks "
        "cartpole.balance) holds no loss target"
    ), errors[0]
    assert "--seq-len" in errors[0]
    # The steps before it trained and were logged (as step + 1, like the error); none after.
    logged = [int(r["step"]) for r in read_metrics(run) if "loss" in r]
    assert logged == list(range(1, empty + 1))
    assert all(r["loss"] > 0 for r in read_metrics(run) if "loss" in r)


def test_the_error_is_a_user_error():
    from gato.errors import UserError

    assert issubclass(NoTargetsError, UserError)
