"""Smoke run of the model benchmark (the measurement itself is `python -m gato.bench`)."""

import pytest

import gato.bench.model


@pytest.mark.slow
def test_model_bench_quick():
    rows = gato.bench.model.run(quick=True)
    train = [r for r in rows if r["benchmark"] == "train fwd+bwd"]
    decode = [r for r in rows if r["benchmark"] == "decode 1 token"]
    assert {r["model"] for r in train} == {"gato", "gato, full logits", "plain gpt"}
    assert all(r["tokens_per_s"] > 0 for r in train)
    assert {r["mode"] for r in decode} == {"kv cache", "recompute"}
    assert all(r["ms_per_token"] > 0 for r in decode)
