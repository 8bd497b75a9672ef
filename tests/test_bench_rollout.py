"""Smoke run of the batched-acting benchmark's pieces (the measurement is `make bench`)."""

import pytest
import torch

from gato.bench.rollout import time_latency, time_rollouts, weights_bytes
from gato.config import get_config
from gato.model import Gato


def test_rollout_bench_pieces_run_for_real():
    torch.manual_seed(0)
    model = Gato(get_config("debug")).eval()
    m = time_rollouts(model, "cartpole.balance", num_envs=3, steps=4, rollouts=5)
    # every rollout ran its 4 capped steps: the rates are consistent with the work done
    assert m["env_steps/s"] * m["seconds"] == pytest.approx(20)
    assert m["rollouts/s"] * m["seconds"] == pytest.approx(5)
    assert time_latency(model, "cartpole.balance", num_envs=2, actions=2) > 0
    n = sum(p.numel() for p in model.parameters())
    assert weights_bytes(model) == 4 * n  # float32, the tied table counted once
