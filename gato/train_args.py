"""The options of `python -m gato.train`: one typed dataclass, one docstring per field (--help).

Defaults are the paper's where it gives one (AdamW peak 1e-4, batch 512, weight decay 0.1, 10x
cosine decay); warm-up and decay lengths shrink automatically for short runs (see the fields).
`--preset FILE.json` (e.g. experiments/presets/tiny.json) sets defaults for a size; flags given
on the command line override the preset.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from gato import distributed as D
from gato.cli import dataclass_parser, parse_dataclass_args
from gato.config import SIZES


@dataclass
class TrainArgs:
    """Options of ``python -m gato.train``."""

    size: str = "tiny"
    """model size from gato.config.SIZES"""
    data_dir: str = "data"
    """collected task folders (made by `make data`)"""
    tasks: str = ""
    """comma-separated tasks to train on (default: every task in --data-dir); vision-language
    and text tasks: vl.scenes, text.corpus, vl.conceptual-captions, vl.ok-vqa, text.oscar,
    text.wikipedia, or vl.NAME / text.NAME for a folder --data-dir/NAME (gato/vl/tasks.py)"""
    task_weights: str = ""
    """sample weights as name=weight,... (a task or a family such as dmc, atari, vl, text)"""
    text_files: str = ""
    """comma-separated text/.jsonl files mixed in as the 'text' domain"""
    run_dir: str = ""
    """run folder: checkpoints, metrics.csv, TensorBoard, loss.png (default: runs/<size>-<time>)"""
    preset: str = ""
    """JSON file of option defaults (command-line flags override it)"""
    steps: int = 1000
    """optimizer steps in all (the paper: about 1e6)"""
    batch_size: int = 512
    """GLOBAL batch in sequences, over all devices (the paper: 512)"""
    micro_batch_size: int = 0
    """rows per device per forward; accumulation = batch / (micro x devices) (0: none)"""
    seq_len: int = 0
    """tokens per sequence L (0: the size's block_size)"""
    lr: float = 1e-4
    """peak learning rate (the paper: 1e-4)"""
    warmup_steps: int = -1
    """linear warm-up from 1e-7 to --lr (the paper: 15000; -1: min(15000, steps / 20))"""
    decay_steps: int = -1
    """cosine decay steps after warm-up (the paper: 1e6; -1: min(1e6, steps - warm-up))"""
    min_lr_ratio: float = 0.1
    """the learning rate after decay, as a share of the peak (the paper: 10x lower)"""
    weight_decay: float = 0.1
    """AdamW weight decay on matrices (see gato/optim.py)"""
    grad_clip: float = 1.0
    """maximum global gradient norm"""
    dropout: float = 0.0
    """dropout (0 in pretraining, 0.1 when fine-tuning)"""
    bin_init: str = "size"
    """initial rows of the 1024 continuous bins: normal, fourier (neighbouring bins start
    alike; gato.config's bin_embedding_init), or size (the size's own setting)"""
    dtype: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16"""
    compile: bool = False
    """torch.compile each transformer block"""
    parallel: str = "auto"
    """auto (FSDP2 when weights + Adam state exceed 40%% of a GPU, else DDP), none, ddp or fsdp"""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda"""
    num_workers: int = 2
    """sampler worker processes (0: build batches in the training process)"""
    eval_every: int = 100
    """steps between validation losses (held-out episodes)"""
    eval_batches: int = 4
    """global batches (of --batch-size rows) in the fixed validation set"""
    ckpt_every: int = 500
    """steps between checkpoints (one is always written at the end)"""
    keep_checkpoints: int = 3
    """newest checkpoints kept (older ones are deleted)"""
    resume: bool = False
    """continue exactly from the newest checkpoint in --run-dir (an error if there is none)"""
    seed: int = 0
    """seed of the initial weights, the data and every step's random numbers"""
    log_every: int = 10
    """steps between metrics rows and progress-bar updates"""
    prompt_prob: float = 0.25
    """share of sequences that start with a prompt from another episode (0: no prompts)"""
    max_prompt_frac: float = 0.5
    """a prompt's token budget as a share of --seq-len, or with --window-steps of a window,
    which it precedes (there it may exceed 1: 1.0 with --window-steps 1 is one timestep)"""
    window_steps: int = 0
    """pack each row with windows of this many timesteps, attention inside each (0: one
    window of --seq-len tokens per row, the paper's; gato/data.py)"""
    task_window_steps: str = ""
    """--window-steps per task or family as name=steps,... (e.g. babyai=3; 0: unpacked)"""


CHOICES = {
    "size": sorted(SIZES),
    "dtype": ["auto", "fp32", "bf16"],
    "bin_init": ["size", "normal", "fourier"],
    "parallel": D.PARALLEL_MODES,
    "device": ["auto", "cpu", "cuda"],
}


def build_parser() -> argparse.ArgumentParser:
    from gato import train

    return dataclass_parser(TrainArgs, "python -m gato.train", train.__doc__, CHOICES)


def parse_args(argv=None) -> TrainArgs:
    from gato import train

    args, _ = parse_dataclass_args(TrainArgs, argv, "python -m gato.train", train.__doc__, CHOICES)
    checks = {
        "steps": args.steps >= 1,
        "batch_size": args.batch_size >= 1,
        "lr": args.lr > 0,
        "log_every": args.log_every >= 1,
        "eval_every": args.eval_every >= 1,
        "ckpt_every": args.ckpt_every >= 1,
        "keep_checkpoints": args.keep_checkpoints >= 1,
        "micro_batch_size": args.micro_batch_size >= 0,
        "seq_len": args.seq_len >= 0,
        "window_steps": args.window_steps >= 0,
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise SystemExit(f"invalid values for {', '.join('--' + b.replace('_', '-') for b in bad)}")
    return args


@dataclass
class Plan:
    """How the global batch is split: rows [rank * per_rank, (rank + 1) * per_rank) of every
    step belong to this rank, in `accum` micro-batches of `micro` rows."""

    micro: int
    accum: int
    rank: int
    world_size: int

    def __call__(self, step: int) -> list[range]:  # indices_for_step (picklable for workers)
        base = self.rank * self.micro * self.accum
        return [
            range(base + j * self.micro, base + (j + 1) * self.micro) for j in range(self.accum)
        ]


def make_plan(args: TrainArgs, world: D.World) -> Plan:
    micro = args.micro_batch_size or args.batch_size // world.world_size
    if micro < 1 or args.batch_size % (micro * world.world_size):
        raise SystemExit(
            f"--batch-size {args.batch_size} must be a multiple of --micro-batch-size ({micro}) "
            f"x world size ({world.world_size})"
        )
    return Plan(micro, args.batch_size // (micro * world.world_size), world.rank, world.world_size)
