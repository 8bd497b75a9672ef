"""Checkpoints round-trip, are written atomically, and refuse to load when damaged."""

import json

import pytest
import torch

from gato.checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    load_model,
    resolve_checkpoint,
    save_checkpoint,
)
from gato.config import get_config
from gato.model import Gato


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    config = get_config("debug")
    model = Gato(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.zero_grad()
    sum(p.sum() for p in model.parameters()).backward()
    opt.step()
    path = save_checkpoint(
        tmp_path,
        7,
        model.state_dict(),
        config,
        state={"sampler": {"seed": 3}},
        optimizer_state=opt.state_dict(),
    )
    return tmp_path, path, model, opt


def test_round_trip(saved):
    run, path, model, opt = saved
    assert path == run / "checkpoints" / "step_00000007" and resolve_checkpoint(run) == path
    ckpt = load_checkpoint(run)
    assert ckpt.step == 7 and ckpt.state["sampler"] == {"seed": 3}
    assert ckpt.config == model_config(model)
    restored, _ = load_model(run)
    for (name, a), b in zip(
        model.state_dict().items(), restored.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert ckpt.optimizer_state["state"].keys() == opt.state_dict()["state"].keys()
    assert not restored.training


def model_config(model):
    return model.config


def test_truncated_and_corrupted_files_are_named(saved):
    run, path, *_ = saved
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors is truncated"):
        load_checkpoint(run)
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    weights.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="model.safetensors is corrupted"):
        load_model(run)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json is corrupted"):
        load_checkpoint(path)


def test_incomplete_folders_are_errors_never_skipped(saved, tmp_path):
    run, path, model, _ = saved
    # A crash mid-save leaves a hidden temporary folder: never a checkpoint.
    (run / "checkpoints" / ".tmp-step_00000009-1").mkdir()
    assert list_checkpoints(run) == [path]
    # A step folder without a manifest (copied half, or tampered with) is the newest checkpoint
    # and an error naming it: no silent fallback to step 7 (issue 13).
    half = run / "checkpoints" / "step_00000008"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"")
    assert list_checkpoints(run) == [path, half]
    with pytest.raises(CheckpointError, match="step_00000008 is not a complete checkpoint"):
        load_checkpoint(run)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "elsewhere")
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        load_checkpoint(half)


def test_keep_prunes_old_checkpoints(tmp_path):
    config = get_config("debug")
    state = Gato(config).state_dict()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, state, config, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000003"]
    assert json.loads((list_checkpoints(tmp_path)[-1] / "state.json").read_text())["step"] == 3


def test_missing_path_is_named_as_missing(tmp_path):
    for missing in (tmp_path / "nowhere", tmp_path / "run" / "checkpoints" / "step_00000500"):
        with pytest.raises(CheckpointError, match="does not exist"):
            resolve_checkpoint(missing)
