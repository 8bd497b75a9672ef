"""The checkpoints of a training run: saving a step and resuming from the newest one.

:class:`CheckpointMixin` is the part of gato.train's Trainer (gato/train.py) that writes and
reads checkpoints through gato/checkpoint.py. Saving is a collective (every rank helps gather
the full state, rank 0 writes it); resuming restores the weights, the optimizer, the RNG states
and checks that the sampler describes the same data. Any problem resuming is a UserError (one
line, exit 2 under gato.errors.run_command), never a silent fresh start.
"""

from __future__ import annotations

import os
import signal
from dataclasses import asdict

import torch

from gato import distributed as D
from gato.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gato.errors import UserError

FAULT_ENV = "GATO_TRAIN_KILL_AFTER_CKPT"
"""Test hook: SIGKILL the process right after the checkpoint of this step is written."""


def rng_states(world: D.World) -> dict:
    states = {"torch": torch.get_rng_state()}
    if world.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(world.device)
    return states


class CheckpointMixin:
    """save() and restore() of gato.train.Trainer (which sets every attribute they read)."""

    def save(self, step: int, extra: dict) -> None:
        """A collective: every rank helps gather the full state; rank 0 writes it."""
        model_state = D.full_model_state(self.model)
        optim_state = D.full_optimizer_state(self.model, self.optimizer)
        rngs = D.gather_objects(rng_states(self.world), self.world)
        if self.world.is_main:
            state = {
                "args": asdict(self.args),
                "sampler": self.sampler.state_dict(),
                "world_size": self.world.world_size,
                **extra,
            }
            save_checkpoint(
                self.run_dir,
                step,
                model_state,
                self.config,
                state,
                {"optimizer": optim_state, "rng": rngs},
                self.args.keep_checkpoints,
            )
        D.barrier(self.world)
        if os.environ.get(FAULT_ENV) == str(step):
            os.kill(os.getpid(), signal.SIGKILL)

    def restore(self) -> dict:
        """Load the newest checkpoint of the run folder; any problem is a UserError (never a
        silent fresh start). Returns its JSON state."""
        ckpt, info = None, {}
        if self.world.is_main:
            try:
                ckpt = load_checkpoint(self.run_dir)
                if ckpt.optimizer_state is None:
                    raise CheckpointError(f"{ckpt.path} has no optimizer state to resume from")
                info = {
                    "state": ckpt.state,
                    "config": ckpt.config.to_dict(),
                    "path": str(ckpt.path),
                }
            except CheckpointError as e:
                info = {"error": f"cannot resume from {self.run_dir}: {e}"}
        info = D.broadcast_object(info, self.world)
        if "error" in info:
            raise UserError(info["error"])
        if info["config"] != self.config.to_dict():
            raise UserError(
                f"{info['path']} holds a different model ({info['config']}) than "
                f"these options build ({self.config.to_dict()})"
            )
        try:
            self.sampler.load_state_dict(info["state"]["sampler"])
        except ValueError as e:
            raise UserError(f"cannot resume from {info['path']}: {e}") from e
        D.load_full_state(
            self.model,
            self.optimizer,
            ckpt.model_state if ckpt else {},
            ckpt.optimizer_state["optimizer"] if ckpt else {},
            self.world,
        )
        rngs = D.broadcast_object(ckpt.optimizer_state["rng"] if ckpt else None, self.world)
        if len(rngs) == self.world.world_size:  # else: a new world size, new per-rank streams
            torch.set_rng_state(rngs[self.world.rank]["torch"])
            if "cuda" in rngs[self.world.rank] and self.world.device.type == "cuda":
                torch.cuda.set_rng_state(rngs[self.world.rank]["cuda"], self.world.device)
        if self.world.is_main:
            print(f"resumed from {info['path']} (step {info['state']['step']})", flush=True)
        return info["state"]
