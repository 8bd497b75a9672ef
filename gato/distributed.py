"""Parallelism for training: process-group setup, DDP / FSDP2 wrapping, full state dicts.

One process per device, started by `torchrun` (which sets RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous variables); a plain `python -m gato.train` is a world of one and touches no process
group. Backend: NCCL on CUDA, gloo on CPU (so the multi-process path is testable on a laptop).

Wrapping (`parallelize`):
  * ``ddp``: every rank holds the whole model; gradients are averaged by all-reduce.
  * ``fsdp``: FSDP2 (`torch.distributed.fsdp.fully_shard`) on every transformer block, then on the
    root: parameters, gradients and optimizer state are sharded across ranks, for sizes whose
    weights + AdamW state do not fit one device.
  * ``auto``: fsdp when 16 bytes per parameter (fp32 weight, gradient, two Adam moments) would
    take more than 40% of one device's memory, else ddp (none for a world of one).

Checkpoints hold *full* state dicts (gato/checkpoint.py): `full_model_state` / `full_optimizer_
state` gather them to rank 0's CPU (other ranks get {}), and `load_full_state` puts them back,
reading them on rank 0 only and broadcasting, whatever the wrapping.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

PARALLEL_MODES = ("auto", "none", "ddp", "fsdp")


@dataclass(frozen=True)
class World:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> World:
    """Join the torchrun job (if any) and pick this process's device.

    `device`: "auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), "cpu" or "cuda"."""
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        # device_id binds NCCL to this GPU eagerly (no lazy first-collective surprises).
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None
        )
    return World(rank, world_size, local_rank, dev)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum over ranks, in place (a no-op for a world of one)."""
    if world.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_objects(obj, world: World) -> list:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    if not world.distributed:
        return [obj]
    out = [None] * world.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, world: World):
    """Rank 0's `obj` on every rank."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def choose_parallel(mode: str, model: nn.Module, world: World) -> str:
    """Resolve "auto" (see the module docstring); check the others are possible."""
    if mode not in PARALLEL_MODES:
        raise ValueError(f"unknown parallel mode {mode!r}; choose from {PARALLEL_MODES}")
    if mode == "auto":
        if not world.distributed:
            return "none"
        state_bytes = 16 * sum(p.numel() for p in model.parameters())
        if world.device.type == "cuda":
            capacity = torch.cuda.get_device_properties(world.device).total_memory
            return "fsdp" if state_bytes > 0.4 * capacity else "ddp"
        return "ddp"
    if mode == "none" and world.distributed:
        raise ValueError("--parallel none needs a single process (not torchrun with >1 ranks)")
    return mode


def parallelize(
    model: nn.Module, mode: str, world: World, param_dtype: torch.dtype | None = None
) -> nn.Module:
    """Move `model` to this rank's device and wrap it; returns the module to call.

    `param_dtype` (FSDP only): the dtype parameters are all-gathered in (bf16 on GPUs halves the
    traffic); gradients are still reduced in fp32 and the sharded master weights stay fp32."""
    model.to(world.device)
    if mode == "none":
        return model
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        # find_unused_parameters: a micro-batch without images never runs the patch encoder,
        # so its parameters get no gradient on that rank while another rank's do; DDP must
        # then contribute zeros for them instead of waiting forever.
        ids = [world.local_rank] if world.device.type == "cuda" else None
        return DDP(model, device_ids=ids, find_unused_parameters=True)
    if mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(world.device.type, (world.world_size,))
        # cast_forward_inputs=False: the batch's float fields (patch pixels, patch intervals)
        # must keep fp32 (autocast handles the matmuls); a bf16 interval could move a patch
        # to a neighbouring position bin.
        mp = MixedPrecisionPolicy(
            param_dtype=param_dtype, reduce_dtype=torch.float32, cast_forward_inputs=False
        )
        for block in model.blocks:  # one all-gather per block, overlapped with compute
            fully_shard(block, mesh=mesh, mp_policy=mp)
        # The root holds the embedding (tied with the output layer) and the final norm; it is
        # kept unsharded after forward since the output layer needs the table again right away.
        fully_shard(model, mesh=mesh, mp_policy=mp, reshard_after_forward=False)
        # Same reason as DDP's find_unused_parameters: ranks whose batch had no images must
        # still join the patch encoder's reduce-scatter (with zeros), or the job hangs.
        model.set_reduce_scatter_unused_params(True)
        # Gato returns logits[:, :vocab_size], a view; nothing modifies it in place.
        warnings.filterwarnings("ignore", message=".*returned a view tensor.*")
        return model
    raise ValueError(f"unknown parallel mode {mode!r}")


def unwrap(model: nn.Module) -> nn.Module:
    """The Gato module inside a DDP wrapper (FSDP2 wraps in place)."""
    return getattr(model, "module", model)


def no_sync(model: nn.Module, skip: bool):
    """Context: skip DDP's gradient all-reduce for a non-final micro-batch (`skip`).

    FSDP2 reduce-scatters every micro-batch (keeping unsharded gradients around instead would
    defeat its memory savings); the sum over micro-batches is the same either way."""
    from contextlib import nullcontext

    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return nullcontext()


def clip_grad_norm(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the global gradient norm; returns it as a plain (replicated) tensor.

    With FSDP2 the gradients are DTensor shards: the norm comes back as a DTensor whose
    full_tensor() is the global norm (the clip itself already used the global value)."""
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


_OPTIONS = dict(full_state_dict=True, cpu_offload=True)
# torch.distributed.checkpoint is imported where used: it takes ~1.5 s to import.


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The gathered model state dict (canonical names, CPU) on rank 0; {} on other ranks for
    sharded models. A collective: every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(**_OPTIONS))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The gathered optimizer state dict, keyed by parameter names (so it survives a change of
    wrapping or world size). A collective, like `full_model_state`."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(**_OPTIONS))


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    model_state: dict,
    optimizer_state: dict | None,
    world: World,
) -> None:
    """Inverse of the two functions above. In a multi-process job only rank 0 needs the state
    (others pass {}): it is broadcast, so a 1.18B checkpoint is read into CPU memory once per
    job, not once per rank."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    broadcast = world.distributed
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=broadcast, strict=True)
    set_model_state_dict(model, model_state, options=options)
    if optimizer is not None and optimizer_state is not None:
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)


# Dense bf16 tensor-core peaks (FLOP/s per device) for MFU; none known: MFU is not logged.
_PEAK_BF16 = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 70e12,
    "4090": 165e12,
}


def device_peak_flops(device: torch.device, dtype: torch.dtype | None) -> float | None:
    """Peak FLOP/s of one device for MFU (bf16 on known GPUs; None elsewhere, e.g. CPUs)."""
    if device.type != "cuda" or dtype != torch.bfloat16:
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in _PEAK_BF16.items() if k in name), None)
