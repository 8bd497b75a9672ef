"""The options of `python -m gato.finetune`: one typed dataclass, one docstring per field (--help).

Defaults are the paper's fine-tuning (GATO_SPEC.md section 8): constant learning rate 1e-5,
batch 64, 10,000 steps, dropout 0.1; AdamW otherwise as in pretraining (gato/optim.py).
`--preset FILE.json` (e.g. experiments/presets/finetune.json) sets defaults; flags override it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from gato.cli import dataclass_parser, parse_dataclass_args
from gato.config import SIZES
from gato.train_args import TrainArgs


@dataclass
class FinetuneArgs:
    """Options of ``python -m gato.finetune``."""

    task: str = "cartpole.swingup"
    """held-out task to fine-tune on (the paper: cartpole.swingup, metaworld.assembly, boxing)"""
    demos: int = 10
    """demonstration budget: train on the first N filtered expert episodes (by episode index)"""
    ckpt: str = ""
    """pretrained checkpoint folder or run folder (its newest checkpoint) to start from"""
    force: bool = False
    """fine-tune even on a task the --ckpt was pretrained on (it is then not held out)"""
    scratch: bool = False
    """start from fresh weights: of the --ckpt model's architecture if given, else of --size"""
    size: str = "tiny"
    """model size from gato.config.SIZES for --scratch without --ckpt"""
    seq_len: int = 0
    """tokens per sequence (0: the checkpoint's block_size, or the size's)"""
    data_dir: str = "data"
    """collected task folders (read only, unless --collect adds episodes)"""
    collect: bool = False
    """collect more expert episodes into --data-dir first when fewer than --demos pass the filter"""
    run_dir: str = ""
    """run folder (default: runs/finetune-<task>-<demos>demos-<init>-<time>)"""
    preset: str = ""
    """JSON file of option defaults (command-line flags override it)"""
    steps: int = 10000
    """optimizer steps (the paper: about 10,000)"""
    batch_size: int = 64
    """sequences per step (the paper: 64)"""
    micro_batch_size: int = 0
    """rows per forward; accumulation = batch / micro (0: the whole batch at once)"""
    lr: float = 1e-5
    """constant learning rate (the paper: 1e-5; no warm-up, no decay)"""
    weight_decay: float = 0.1
    """AdamW weight decay on matrices, as in pretraining"""
    grad_clip: float = 1.0
    """maximum global gradient norm"""
    dropout: float = 0.1
    """dropout while fine-tuning (the paper: 0.1); rollouts run without it"""
    prompt_prob: float = 0.25
    """share of rows prompted with another demonstration (impossible, so none, with --demos 1)"""
    eval_every: int = 500
    """steps between rollout evaluations ("every few hundred steps"); also at step 0 and the end"""
    eval_episodes: int = 10
    """rollouts per evaluation (the paper averages 50)"""
    eval_workers: int = 2
    """rollout worker processes (1: in the training process)"""
    eval_max_steps: int = 0
    """cap on agent steps per rollout (0: the task's episode limit)"""
    eval_device: str = ""
    """torch device of the rollouts (default: the training device)"""
    greedy: bool = False
    """rollouts take the most likely valid token instead of sampling"""
    temperature: float = 1.0
    """rollout sampling temperature"""
    log_every: int = 10
    """steps between metrics rows and progress-bar updates"""
    seed: int = 0
    """seed of fresh weights, the data, dropout and the rollouts"""
    dtype: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16"""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda"""
    parallel: str = "auto"
    """auto, none, ddp or fsdp (under torchrun; see gato.train)"""
    num_workers: int = 0
    """sampler worker processes (0: build batches in the training process)"""
    keep_last: bool = True
    """keep the final checkpoint (with optimizer state) besides the best one"""


CHOICES = {
    "size": sorted(SIZES),
    "dtype": ["auto", "fp32", "bf16"],
    "device": ["auto", "cpu", "cuda"],
    "parallel": ["auto", "none", "ddp", "fsdp"],
}


def build_parser() -> argparse.ArgumentParser:
    from gato import finetune

    return dataclass_parser(FinetuneArgs, "python -m gato.finetune", finetune.__doc__, CHOICES)


def parse_args(argv=None) -> FinetuneArgs:
    from gato import finetune

    args, parser = parse_dataclass_args(
        FinetuneArgs, argv, "python -m gato.finetune", finetune.__doc__, CHOICES
    )
    checks = {
        "demos": args.demos >= 1,
        "steps": args.steps >= 1,
        "batch_size": args.batch_size >= 1,
        "lr": args.lr > 0,
        "eval_every": args.eval_every >= 1,
        "eval_episodes": args.eval_episodes >= 1,
        "eval_workers": args.eval_workers >= 1,
        "log_every": args.log_every >= 1,
        "seq_len": args.seq_len >= 0,
        "eval_max_steps": args.eval_max_steps >= 0,
        "temperature": args.temperature >= 0,
        "dropout": 0 <= args.dropout < 1,
        "prompt_prob": 0 <= args.prompt_prob <= 1,
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        parser.error(f"invalid values for {', '.join('--' + b.replace('_', '-') for b in bad)}")
    if not args.ckpt and not args.scratch:
        parser.error("give --ckpt (a pretrained checkpoint) or --scratch (fresh weights)")
    return args


class HeldOutError(ValueError):
    """The fine-tuning task is one the checkpoint was pretrained on."""


def pretrained_tasks(state: dict) -> set[str]:
    """The tasks a checkpoint's JSON state says it was trained on: gato.train records them
    under state['sampler']['tasks'], fine-tuning runs also under state['tasks']."""
    return set(state.get("tasks") or []) | set((state.get("sampler") or {}).get("tasks") or [])


def check_held_out(args: FinetuneArgs, state: dict, path) -> None:
    """Refuse (HeldOutError) to fine-tune on a task the checkpoint at `path` was trained on,
    unless --force: its score would measure nothing held out."""
    if args.task in pretrained_tasks(state) and not args.force:
        raise HeldOutError(
            f"{path} was pretrained on {args.task}, so fine-tuning on it measures nothing held "
            "out (GATO_SPEC.md section 9); choose a held-out task, or pass --force to "
            "fine-tune on it anyway"
        )


def to_train_args(args: FinetuneArgs, data_dir: str, size: str) -> TrainArgs:
    """The gato.train options that run this fine-tuning: a constant learning rate (no warm-up,
    no decay), no validation batches (rollouts are the evaluation), one checkpoint at the end."""
    return TrainArgs(
        size=size,
        data_dir=data_dir,
        tasks=args.task,
        run_dir=args.run_dir,
        steps=args.steps,
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        seq_len=args.seq_len,
        lr=args.lr,
        warmup_steps=0,
        decay_steps=0,
        min_lr_ratio=1.0,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip,
        dropout=args.dropout,
        dtype=args.dtype,
        parallel=args.parallel,
        device=args.device,
        num_workers=args.num_workers,
        eval_every=args.eval_every,
        eval_batches=0,
        ckpt_every=args.steps,
        keep_checkpoints=1,
        seed=args.seed,
        log_every=args.log_every,
        prompt_prob=args.prompt_prob,
    )
