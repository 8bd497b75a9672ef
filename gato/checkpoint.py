"""Checkpoints: weights as safetensors, config and run state as JSON, optimizer as a torch file.

A checkpoint is a folder ``<run>/checkpoints/step_<N>/`` holding

    model.safetensors   the model's weights (tied tables stored once)
    config.json         the GatoConfig (one source of truth for the architecture)
    state.json          JSON-able run state: step, sampler and schedule state, trainer state
    optimizer.pt        optimizer state and RNG states (optional; read with weights_only=True)
    manifest.json       sha256 and size of every file above, written last

It is written into a hidden temporary folder and renamed into place, so a crash never leaves a
folder that looks complete; on load every file is checked against the manifest, so a truncated
or corrupted checkpoint is an error that says which file is wrong, never a silent fresh start.
Nothing is ever unpickled with code execution.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gato.config import GatoConfig

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"
MANIFEST_FILE = "manifest.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupted."""


@dataclass
class Checkpoint:
    """What a checkpoint folder holds, loaded."""

    path: Path
    config: GatoConfig
    model_state: dict[str, torch.Tensor]
    state: dict = field(default_factory=dict)
    optimizer_state: dict | None = None

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop later names of tensors that share storage (the tied output layer): safetensors
    stores each tensor once; `load_state_dict(strict=False)` then re-ties through the module."""
    seen: dict[tuple, str] = {}
    out = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.device.type != "meta" and key in seen:
            continue
        seen[key] = name
        out[name] = tensor.detach().cpu().contiguous()
    return out


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model_state: dict[str, torch.Tensor],
    config: GatoConfig,
    state: dict | None = None,
    optimizer_state: dict | None = None,
    keep: int | None = None,
) -> Path:
    """Write ``<run_dir>/checkpoints/step_<step>/`` atomically; keep the newest `keep` (None: all).

    `model_state` is a full (gathered) state dict; `state` must be JSON-able."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(_unshare(model_state), tmp / MODEL_FILE)
    (tmp / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    (tmp / STATE_FILE).write_text(json.dumps({"step": step, **(state or {})}, indent=2) + "\n")
    if optimizer_state is not None:
        torch.save(optimizer_state, tmp / OPTIMIZER_FILE)
    files = sorted(p.name for p in tmp.iterdir())
    manifest = {
        name: {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
        for name in files
    }
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    for name in files + [MANIFEST_FILE]:
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())
    if final.exists():  # re-saving a step (e.g. after a resume) replaces it whole
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep is not None:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(path: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders under a run folder (or its checkpoints/), oldest first."""
    path = Path(path)
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _STEP_DIR.match(p.name)) and (p / MANIFEST_FILE).is_file()
    ]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder itself, or the newest one under a run folder."""
    path = Path(path)
    if (path / MANIFEST_FILE).is_file() or (path / MODEL_FILE).is_file():
        return path
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(f"no checkpoint in {path} (expected {path}/checkpoints/step_*/)")
    return found[-1]


def _verify(path: Path) -> dict:
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{manifest_path} is corrupted: {e}") from e
    for name, expected in manifest.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is missing {name}")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise CheckpointError(
                f"checkpoint {path}: {name} is truncated or altered "
                f"({size} bytes, expected {expected['bytes']})"
            )
        if _sha256(file) != expected["sha256"]:
            raise CheckpointError(f"checkpoint {path}: {name} is corrupted (sha256 mismatch)")
    return manifest


def load_checkpoint(path: str | os.PathLike, with_optimizer: bool = True) -> Checkpoint:
    """Load and verify a checkpoint folder (or the newest under a run folder), on the CPU."""
    path = resolve_checkpoint(path)
    manifest = _verify(path)
    try:
        config = GatoConfig.from_dict(json.loads((path / CONFIG_FILE).read_text()))
        state = json.loads((path / STATE_FILE).read_text())
        model_state = load_file(path / MODEL_FILE)
        optimizer_state = None
        if with_optimizer and OPTIMIZER_FILE in manifest:
            optimizer_state = torch.load(
                path / OPTIMIZER_FILE, map_location="cpu", weights_only=True
            )
    except (json.JSONDecodeError, SafetensorError, RuntimeError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e}") from e
    return Checkpoint(path, config, model_state, state, optimizer_state)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model in eval mode, checkpoint) from a checkpoint folder or a run folder."""
    from gato.model import Gato

    ckpt = load_checkpoint(path, with_optimizer=False)
    model = Gato(ckpt.config)
    missing, unexpected = model.load_state_dict(ckpt.model_state, strict=False)
    tied = {name for name in missing if _is_tied_alias(model, name)}
    if set(missing) - tied or unexpected:
        raise CheckpointError(
            f"checkpoint {ckpt.path} does not match its config: missing "
            f"{sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}"
        )
    return model.to(device).eval(), ckpt


def _is_tied_alias(model: torch.nn.Module, name: str) -> bool:
    """True if parameter `name` shares storage with another parameter (a tied weight)."""
    params = dict(model.named_parameters(remove_duplicate=False))
    target = params.get(name)
    return target is not None and any(other is target for n, other in params.items() if n != name)


# ------------------------------------------------------------------------------ discovery


def checkpoint_tasks(state: dict) -> list[str] | None:
    """The task names a checkpoint records having been trained on, or None if it records none.

    `gato.train` writes them in the sampler's state (`state['sampler']['tasks']`, a dict keyed
    by name); fine-tuning writes `state['tasks']` (a list). Both are read."""
    for tasks in (state.get("tasks"), (state.get("sampler") or {}).get("tasks")):
        if isinstance(tasks, dict) and tasks:
            return sorted(tasks)
        if isinstance(tasks, list | tuple) and tasks and all(isinstance(t, str) for t in tasks):
            return list(tasks)
    return None


def newest_checkpoint(runs_dir: str | os.PathLike = "runs", task: str | None = None) -> Path:
    """The most recently written complete checkpoint under runs_dir (by modification time,
    across every run folder), or a clear error if there is none. With `task`, the newest one
    whose recorded task list includes it (by canonical name)."""
    root = Path(runs_dir)
    found: set[Path] = set()
    if root.is_dir():
        for folder in (root, *root.iterdir(), *root.glob("*/*")):
            if folder.is_dir():
                found.update(list_checkpoints(folder))
    if not found:
        raise CheckpointError(
            f"no checkpoint under {root}/ (looked for {root}/<run>/checkpoints/step_*/): "
            "train one first or pass --checkpoint"
        )
    ordered = sorted(found, key=lambda p: ((p / MANIFEST_FILE).stat().st_mtime, str(p)))
    if task is None:
        return ordered[-1]
    from gato.envs import canonical_name

    want = canonical_name(task)
    for path in reversed(ordered):
        try:
            state = json.loads((path / STATE_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            continue  # unreadable: loading it would fail with the reason; look further back
        names = checkpoint_tasks(state) or []
        if want in {_canonical_or_same(t) for t in names}:
            return path
    raise CheckpointError(
        f"none of the {len(ordered)} checkpoints under {root}/ was trained on {want!r}: "
        "pass --checkpoint, or --allow-unseen-task where the command has it"
    )


def _canonical_or_same(name: str) -> str:
    from gato.envs import canonical_name

    try:
        return canonical_name(name)
    except ValueError:
        return name
