"""Smoke run of the batched-acting benchmark's pieces (the measurement is `make bench`)."""

import pytest
import torch

from gato.bench.rollout import kv_bytes_per_env, time_latency, time_rollouts, weights_bytes
from gato.config import get_config
from gato.model import Gato


@pytest.mark.parametrize("memory", ["sliding", "window"])
def test_rollout_bench_pieces_run_for_real(memory):
    torch.manual_seed(0)
    model = Gato(get_config("debug")).eval()
    m = time_rollouts(model, "cartpole.balance", num_envs=3, steps=4, rollouts=5, memory=memory)
    # every rollout ran its 4 capped steps: the rates are consistent with the work done
    assert m["env_steps/s"] * m["seconds"] == pytest.approx(20)
    assert m["rollouts/s"] * m["seconds"] == pytest.approx(5)
    assert time_latency(model, "cartpole.balance", num_envs=2, actions=2) > 0


def test_decoding_bytes_count_the_decoder_and_the_action_rows():
    """The floor counts what a decoding forward reads: every decoder weight and 1,024 rows of
    the tied table (the output layer scores only the action range), not the 33k-row table."""
    cfg = get_config("debug")
    model = Gato(cfg).eval()
    per_layer = (
        2 * cfg.d_model  # ln_1
        + cfg.d_model * 3 * cfg.attn_dim
        + 3 * cfg.attn_dim  # qkv
        + cfg.attn_dim * cfg.d_model
        + cfg.d_model  # attention output
        + 2 * cfg.d_model  # ln_2
        + cfg.d_model * cfg.d_ff
        + cfg.d_ff
        + cfg.d_ff * cfg.d_model
        + cfg.d_model  # MLP
    )
    decoder = cfg.n_layer * per_layer + 2 * cfg.d_model  # + ln_f
    assert weights_bytes(model) == 4 * (decoder + 1024 * cfg.d_model)
    assert weights_bytes(model.to(torch.bfloat16)) == 2 * (decoder + 1024 * cfg.d_model)
    assert kv_bytes_per_env(model, 100) == 2 * cfg.n_layer * 2 * 100 * cfg.attn_dim
