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
A ``step_*`` folder without a valid manifest is such an error too, never skipped for an older
step (a resume that fell back would then overwrite the newer one). Nothing is ever unpickled with
code execution.

Saving first removes the temporary folders of dead writers (``.tmp-step_<N>-<pid>``, the pid
not alive), then checks that the file system has room for the estimated size (a clear error
instead of a half-written file on a full disk). Every file gets the permissions that Python's
``open`` gives under the process umask (safetensors alone would write 0600).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gato.config import GatoConfig
from gato.errors import UserError
from gato.locks import pid_alive

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"
MANIFEST_FILE = "manifest.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_TMP_DIR = re.compile(r"^\.tmp-step_\d+-(\d+)$")
KILL_IN_WRITE_ENV = "GATO_CKPT_KILL_IN_WRITE"
"""Test hook: SIGKILL the process in the middle of writing this step's checkpoint (after the
weights, before the optimizer state and the manifest)."""
# Room asked for beyond the tensors' bytes: headers, JSON files, the optimizer's pickled structure.
SPACE_MARGIN_BYTES = 4 << 20
SPACE_MARGIN_FRACTION = 0.02


class CheckpointError(RuntimeError, UserError):
    """A checkpoint is missing, incomplete or corrupted, or cannot be written."""


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


def tensor_bytes(obj) -> int:
    """Bytes of every tensor in a nested state (dicts, lists, tuples): what a save writes."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def remove_stale_temporaries(root: str | os.PathLike) -> list[Path]:
    """Delete ``.tmp-step_*`` folders of dead writers (and this process's own leftovers) under a
    checkpoints folder; a live other writer's folder is left alone. Returns what was removed."""
    root = Path(root)
    removed = []
    for path in sorted(root.glob(".tmp-step_*")) if root.is_dir() else []:
        m = _TMP_DIR.match(path.name)
        pid = int(m.group(1)) if m else -1
        if pid == os.getpid() or not pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _check_space(root: Path, need: int, step: int) -> None:
    free = shutil.disk_usage(root).free
    if free < need:
        raise CheckpointError(
            f"not enough free space in {root} for the checkpoint of step {step}: it needs about "
            f"{need / 2**20:.1f} MiB and {free / 2**20:.1f} MiB are free; free some space (or "
            "keep fewer checkpoints) and resume"
        )


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

    `model_state` is a full (gathered) state dict; `state` must be JSON-able. A CheckpointError
    if the file system has no room for it (checked before writing, and on a write that fails)."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}-{os.getpid()}"
    weights = _unshare(model_state)
    need = tensor_bytes(weights) + tensor_bytes(optimizer_state)
    need += SPACE_MARGIN_BYTES + int(SPACE_MARGIN_FRACTION * need)
    _check_space(root, need, step)
    tmp.mkdir()
    try:
        _write_files(tmp, step, weights, config, state, optimizer_state)
    except BaseException as e:
        # torch's writer reports a full disk as "unexpected pos N vs M", with no errno: so also
        # ask the disk whether the rest of the checkpoint would still fit.
        written = sum(f.stat().st_size for f in tmp.iterdir() if f.is_file())
        full = _out_of_space(e) or shutil.disk_usage(root).free < need - written
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written folder behind
        if full and not isinstance(e, KeyboardInterrupt):
            raise CheckpointError(
                f"the disk of {root} filled up while writing the checkpoint of step {step} "
                f"(about {need / 2**20:.1f} MiB; {e}); free some space and resume"
            ) from e
        raise
    if final.exists():  # re-saving a step (e.g. after a resume) replaces it whole
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep is not None:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _write_files(tmp: Path, step: int, weights, config, state, optimizer_state) -> None:
    """The checkpoint's files and manifest in `tmp`, synced, all with one file mode."""
    (tmp / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    (tmp / STATE_FILE).write_text(json.dumps({"step": step, **(state or {})}, indent=2) + "\n")
    save_file(weights, tmp / MODEL_FILE)
    if os.environ.get(KILL_IN_WRITE_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
    if optimizer_state is not None:
        torch.save(optimizer_state, tmp / OPTIMIZER_FILE)
    files = sorted(p.name for p in tmp.iterdir())
    manifest = {
        name: {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
        for name in files
    }
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    # config.json was written by Python's open: the umask's mode, which every file gets.
    mode = (tmp / CONFIG_FILE).stat().st_mode & 0o777
    for name in files + [MANIFEST_FILE]:
        os.chmod(tmp / name, mode)
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())


def _out_of_space(error: BaseException) -> bool:
    """True if a failed write ran out of disk (torch and safetensors wrap the OSError)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    cause = error.__cause__ or error.__context__
    text = str(error)
    return (
        "No space left" in text
        or "quota exceeded" in text.lower()
        or (cause is not None and cause is not error and _out_of_space(cause))
    )


def list_checkpoints(path: str | os.PathLike) -> list[Path]:
    """Checkpoint folders (``step_*``) under a run folder (or its checkpoints/), oldest first.

    Complete or not: a folder without a valid manifest is listed, so that loading it is an
    error naming it, never a silent fallback to an older step."""
    path = Path(path)
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found) if p.is_dir()]


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder itself, or the newest one under a run folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: it does not exist")
    if (
        _STEP_DIR.match(path.name)
        or (path / MANIFEST_FILE).is_file()
        or (path / MODEL_FILE).is_file()
    ):
        return path
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(f"no checkpoint in {path} (expected {path}/checkpoints/step_*/)")
    return found[-1]


def _verify(path: Path, skip: frozenset[str] = frozenset()) -> dict:
    """Check every file the manifest lists (except `skip`) by size and sha256; the manifest."""
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{manifest_path} is corrupted: {e}") from e
    if not isinstance(manifest, dict) or not all(
        isinstance(v, dict) and {"bytes", "sha256"} <= set(v) for v in manifest.values()
    ):
        raise CheckpointError(f"{manifest_path} is corrupted: not a manifest of files")
    for name in (MODEL_FILE, CONFIG_FILE, STATE_FILE):
        if name not in manifest:
            raise CheckpointError(f"{manifest_path} is corrupted: it does not list {name}")
    for name, expected in manifest.items():
        if name in skip:
            continue
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
    """Load and verify a checkpoint folder (or the newest under a run folder), on the CPU.

    Without the optimizer (deploying, fine-tuning) optimizer.pt is neither read nor verified."""
    path = resolve_checkpoint(path)
    manifest = _verify(path, frozenset() if with_optimizer else frozenset({OPTIMIZER_FILE}))
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


def trained_windows(state: dict) -> dict[str, tuple[int, int]]:
    """{task: (window tokens, prompt budget)} for the tasks a checkpoint was trained on in
    packed windows (gato/data.py's window_steps), read from its sampler state; {} otherwise.
    The budget is the share of a window a training prompt could fill (0 if none was drawn)."""
    sampler = state.get("sampler") or {}
    config = sampler.get("config") or {}
    share = config.get("max_prompt_frac", 0.5) if config.get("prompt_prob", 0.25) > 0 else 0.0
    return {
        task: (int(tokens), int(share * tokens))
        for task, tokens in (sampler.get("window_tokens") or {}).items()
    }


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
    ordered = sorted(found, key=lambda p: (_written_at(p), str(p)))
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


def _written_at(path: Path) -> float:
    """When a checkpoint was completed: its manifest's time (the folder's, if it has none; then
    loading it is an error that names it)."""
    manifest = path / MANIFEST_FILE
    return (manifest if manifest.is_file() else path).stat().st_mtime


def _canonical_or_same(name: str) -> str:
    from gato.envs import canonical_name

    try:
        return canonical_name(name)
    except ValueError:
        return name
