"""`python -m gato.train`: pretrain Gato on the collected data (GATO_SPEC.md sections 4, 7, 8).

    python -m gato.train --size tiny --steps 300 --batch-size 16 --lr 1e-3      # one CPU/GPU
    torchrun --standalone --nproc_per_node=8 -m gato.train --size 364M        # 8 GPUs
    torchrun --nnodes=4 --nproc_per_node=8 --rdzv-backend=c10d \\
        --rdzv-endpoint=HOST:29500 --rdzv-id=gato -m gato.train --size 1.18B   # 4 nodes
    python -m gato.train --run-dir runs/tiny-XXXX --resume                    # continue exactly

Components: the sampler (gato/data.py) builds rows as a pure function of (seed, step, row), so
every rank builds exactly its rows of the global batch; gato/distributed.py wraps the model
(DDP or FSDP2) and gathers full state dicts; gato/optim.py holds AdamW and the schedule;
gato/checkpoint.py writes verified checkpoints; gato/train_log.py the CSV, TensorBoard and PNG.

A step is one optimizer update on --batch-size sequences (global, over all ranks), computed as
micro-batches of --micro-batch-size rows per device; the loss is exactly the mean over every
target token of the global batch, whatever the split (see `train_step`). Resuming restores the
weights, the optimizer, the step (the schedule and the data are functions of it) and the RNG
states, and the random numbers of every step are derived from (seed, step, rank) anyway, so a
resumed run repeats an uninterrupted one bit for bit on the same hardware.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gato import distributed as D
from gato.checkpoint import list_checkpoints
from gato.cli import check_data_dir
from gato.config import SIZES, GatoConfig, get_config
from gato.data import DataConfig, SampleBatch, SequenceSampler, make_loader
from gato.errors import UserError, run_command
from gato.inputs import GatoInputs
from gato.layout_check import LayoutError, check_tasks_fit, layouts_from_sources
from gato.locks import run_folder_lock
from gato.model import Gato
from gato.optim import build_optimizer, lr_at, set_lr
from gato.train_args import Plan, TrainArgs, make_plan, parse_args  # noqa: F401 (Plan: re-exported)
from gato.train_ckpt import FAULT_ENV, CheckpointMixin, rng_states  # noqa: F401 (re-exported)
from gato.train_log import TrainLogger
from gato.train_loss import (  # noqa: F401 (merge_domains: re-exported)
    domain_losses,
    global_targets,
    merge_domains,
)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of one step on one rank (dropout, patch position sampling)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1)


class Trainer(CheckpointMixin):
    def __init__(self, args: TrainArgs, world: D.World):
        self.args, self.world = args, world
        self.run_dir = Path(args.run_dir)
        check_data_dir(args.data_dir)  # a UserError naming --data-dir: missing, or a file
        self.config: GatoConfig = self.model_config()
        self.seq_len = self.config.block_size
        data = self.data_config()
        try:
            self.sampler = SequenceSampler(data.validate(), "train")
        except ValueError as e:  # an option that does not fit the data (e.g. a window name)
            raise UserError(str(e)) from e
        try:
            self.val_sampler = SequenceSampler(data, "val")
        except ValueError:  # no task has enough episodes to hold one out
            self.val_sampler = None
        if self.sampler.held_out and world.is_main:
            print(
                f"gato.train: held-out tasks {', '.join(self.sampler.held_out)} are in "
                f"{args.data_dir} but not in the default pretraining mix (GATO_SPEC.md section "
                "9); name them in --tasks to train on them",
                flush=True,
            )
        # Before any model exists: a timestep longer than the local-position table or the
        # context would train on positions the model cannot represent.
        sources = self.sampler.sources + (self.val_sampler.sources if self.val_sampler else [])
        check_tasks_fit(layouts_from_sources(sources), self.config)
        self.plan = make_plan(args, world)
        use_bf16 = args.dtype == "bf16" or (args.dtype == "auto" and world.device.type == "cuda")
        self.amp_dtype = torch.bfloat16 if use_bf16 else None

        torch.manual_seed(args.seed)  # the same initial weights on every rank
        model = self.build_model()
        self.flops_per_token = model.estimate_flops_per_token(self.seq_len)
        self.num_params = model.num_params()
        self.mode = D.choose_parallel(args.parallel, model, world)
        if args.compile:  # per block: the embedding's data-dependent branches stay eager
            for block in model.blocks:
                block.compile()
        self.model = D.parallelize(model, self.mode, world, self.amp_dtype)
        fused = world.device.type == "cuda" and self.mode != "fsdp"
        self.optimizer = build_optimizer(self.model, args.lr, args.weight_decay, fused=fused)
        self.warmup = args.warmup_steps if args.warmup_steps >= 0 else min(15000, args.steps // 20)
        self.decay = (
            args.decay_steps
            if args.decay_steps >= 0
            else min(1_000_000, max(0, args.steps - self.warmup))
        )
        self.peak_flops = D.device_peak_flops(world.device, self.amp_dtype)

    # ------------------------------------------------------- what to train (fine-tuning overrides)

    def model_config(self) -> GatoConfig:
        """The architecture: --size with --dropout and --bin-init, block_size = --seq-len (0: the
        size's)."""
        base = SIZES[self.args.size]
        init = getattr(self.args, "bin_init", "size")  # fine-tuning's args have no --bin-init
        return get_config(
            self.args.size,
            dropout=self.args.dropout,
            block_size=self.args.seq_len or base.block_size,
            bin_embedding_init=base.bin_embedding_init if init == "size" else init,
        )

    def data_config(self) -> DataConfig:
        """Where the training sequences come from (gato/data.py)."""
        args = self.args
        return DataConfig(
            data_dir=args.data_dir,
            tasks=tuple(t for t in args.tasks.split(",") if t),
            task_weights=_pairs(args.task_weights, "--task-weights"),
            text_files=tuple(t for t in args.text_files.split(",") if t),
            seq_len=self.seq_len,
            prompt_prob=args.prompt_prob,
            # Fine-tuning's args have neither: it does not pack, and keeps the default budget.
            max_prompt_frac=getattr(args, "max_prompt_frac", 0.5),
            window_steps=getattr(args, "window_steps", 0),
            task_window_steps=_pairs(
                getattr(args, "task_window_steps", ""), "--task-window-steps", int
            ),
            seed=args.seed,
        )

    def build_model(self) -> Gato:
        """The initial model (seeded by the caller): fresh weights of self.config."""
        return Gato(self.config)

    # ------------------------------------------------------------------------ one step

    def autocast(self):
        return torch.autocast(
            self.world.device.type,
            dtype=self.amp_dtype or torch.float32,
            enabled=self.amp_dtype is not None,
        )

    def inputs(self, mb: SampleBatch):
        inputs = GatoInputs.from_batch(mb.batch, self.world.device, non_blocking=True)
        return inputs, *inputs.next_token_targets()

    def train_step(self, step: int, micro: list[SampleBatch], domains: dict | None):
        """One optimizer update; returns (loss tensor, grad norm tensor), without host syncs
        (but for the target count of several ranks, see `global_targets`).

        The model's loss is the mean over the targets of *its* micro-batch, and micro-batches
        hold different numbers of targets (padding, prompts, observation-heavy windows). The
        global batch loss is sum(token losses) / N, N = targets in the whole global batch. So
        each micro-batch's mean is weighted by n_i / N (n_i its targets; N summed over this
        rank's micro-batches, then all-reduced over ranks before any forward, from the input
        masks alone). DDP and FSDP *average* gradients over ranks, so each rank's backward is
        scaled by world_size to turn that average back into the sum. The result is the exact
        gradient of the global mean, for any number of ranks and micro-batches."""
        set_lr(
            self.optimizer,
            lr_at(step, self.args.lr, self.warmup, self.decay, self.args.min_lr_ratio),
        )
        torch.manual_seed(step_seed(self.args.seed, step, self.world.rank))
        counts, total = global_targets(step, micro, self.world)  # NoTargetsError if none
        loss_sum = torch.zeros((), device=self.world.device)
        for i, mb in enumerate(micro):
            inputs, targets, mask = self.inputs(mb)
            with D.no_sync(self.model, skip=i < len(micro) - 1):
                with self.autocast():
                    logits, loss = self.model(inputs, targets, mask)
                share = loss * (counts[i] / total)  # this micro-batch's part of the global mean
                (share * self.world.world_size).backward()
            loss_sum += share.detach()
            if domains is not None:
                with torch.no_grad():
                    domain_losses(logits.detach(), targets, mask, mb.domains, domains)
        # A module no micro-batch used this step (the patch encoder, with no images in the whole
        # batch) has no gradient: give it zeros, so that it still takes its AdamW step (weight
        # decay, moment decay) as it does under FSDP, which always reduce-scatters zeros for it;
        # then every parallel mode follows the same trajectory.
        for p in self.model.parameters():
            if p.grad is None and p.requires_grad:
                p.grad = torch.zeros_like(p)
        norm = D.clip_grad_norm(self.model, self.args.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return D.all_reduce_sum(loss_sum, self.world), norm

    @torch.no_grad()
    def evaluate(self, step: int = 0) -> dict[str, float]:
        """Validation loss (overall and per domain) on a fixed set of held-out rows: the val
        sampler's first --eval-batches global batches, split over ranks like training batches
        (so the set does not depend on the world size or micro-batch size); eval mode (no
        dropout, mean patch positions). `step`: the optimizer steps done (for overrides)."""
        if self.val_sampler is None or self.args.eval_batches <= 0:
            return {}
        self.model.eval()
        sums = defaultdict(lambda: [0.0, 0])
        for j in range(self.args.eval_batches):
            for rows in self.plan(j):
                mb = self.val_sampler.rows(j, rows)
                inputs, targets, mask = self.inputs(mb)
                with self.autocast():
                    logits, _ = self.model(inputs, targets, mask)
                domain_losses(logits, targets, mask, mb.domains, sums)
        self.model.train()
        return merge_domains(D.gather_objects(dict(sums), self.world), "val_loss")

    # ---------------------------------------------------------------------------- loop

    def run(self) -> dict:
        """Train, holding the run folder's lock (gato/locks.py): one writer per run folder."""
        with run_folder_lock(self.run_dir, "gato.train", self.world):
            return self._run()

    def _run(self) -> dict:
        args, world = self.args, self.world
        start, extra = 0, {"tokens": 0, "train_seconds": 0.0}
        if args.resume:
            state = self.restore()
            start = int(state["step"])
            extra = {k: state.get(k, v) for k, v in extra.items()}
        elif list_checkpoints(self.run_dir):
            raise UserError(
                f"{self.run_dir} already has checkpoints: pass --resume to continue "
                "that run, or choose another --run-dir"
            )
        log = TrainLogger(self.run_dir, world.is_main, start if args.resume else None)
        if world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "args.json").write_text(json.dumps(asdict(args), indent=2) + "\n")
            print(
                f"gato.train: {args.size} ({self.num_params / 1e6:.1f}M params), "
                f"{world.world_size} x {world.device.type} ({self.mode}), batch "
                f"{args.batch_size} x {self.seq_len} = {self.plan.accum} x {self.plan.micro} "
                f"rows per device, tasks {len(self.sampler.tasks)}, run {self.run_dir}",
                flush=True,
            )
        if start == 0:
            log.log(0, self.evaluate(0))
        tokens_per_step = args.batch_size * self.seq_len
        bar = tqdm(
            total=args.steps,
            initial=start,
            unit="step",
            disable=not world.is_main,
            dynamic_ncols=True,
        )
        loader = make_loader(self.sampler, start, self.plan, args.num_workers)
        window_loss, window_steps, window_t = 0.0, 0, time.perf_counter()
        last = {}
        step = start
        try:
            for step, micro in loader:
                if step >= args.steps:
                    break
                done = step + 1
                log_now = done % args.log_every == 0 or done == args.steps
                domains = defaultdict(lambda: [0.0, 0]) if log_now else None
                loss, norm = self.train_step(step, micro, domains)
                window_loss += loss  # stays on the device: no sync until the log step
                window_steps += 1
                metrics = {}
                if log_now:
                    elapsed = time.perf_counter() - window_t
                    tok_s = window_steps * tokens_per_step / max(elapsed, 1e-9)
                    metrics = {
                        "loss": float(window_loss) / window_steps,
                        **merge_domains(D.gather_objects(dict(domains), world), "loss"),
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "grad_norm": float(norm),
                        "tokens_per_s": tok_s,
                    }
                    if self.peak_flops:
                        metrics["mfu"] = (
                            self.flops_per_token * tok_s / (self.peak_flops * world.world_size)
                        )
                    extra["train_seconds"] += elapsed
                    bar.set_postfix(loss=f"{metrics['loss']:.3f}", tok_s=f"{tok_s:,.0f}")
                    window_loss, window_steps = 0.0, 0
                extra["tokens"] += tokens_per_step
                if done % args.eval_every == 0 or done == args.steps:
                    metrics.update(self.evaluate(done))
                if metrics:
                    log.log(done, metrics)
                    last.update(metrics)
                bar.update(1)
                if done % args.ckpt_every == 0 or done == args.steps:
                    self.save(done, extra)
                if log_now:
                    window_t = time.perf_counter()  # eval and checkpoints are not train time
        finally:
            bar.close()
            del loader  # stops the sampler's worker processes
        plot = log.close()
        if world.is_main:
            print(
                f"done: step {args.steps}, loss {last.get('loss', float('nan')):.4f}, val loss "
                f"{last.get('val_loss', float('nan')):.4f}; curve {plot}; checkpoints in "
                f"{self.run_dir / 'checkpoints'}",
                flush=True,
            )
        return last


def _pairs(text: str, flag: str, kind=float) -> dict:
    """'a=1,b=2' -> {'a': kind('1'), 'b': kind('2')}; a UserError naming `flag` otherwise."""
    out = {}
    for part in (p for p in text.split(",") if p):
        name, _, value = part.partition("=")
        try:
            if not name:
                raise ValueError("no name")
            out[name] = kind(value)
        except ValueError:
            raise UserError(
                f"{flag}: {part!r} is not name={kind.__name__} ({flag} a=1,b=2)"
            ) from None
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    world = D.init_distributed(args.device)
    try:
        if not args.run_dir:
            if args.resume:
                raise UserError("--resume needs --run-dir (the run folder to continue)")
            stamp = D.broadcast_object(time.strftime("%Y%m%d-%H%M%S"), world)
            args.run_dir = f"runs/{args.size}-{stamp}"
        return Trainer(args, world).run()
    except LayoutError as e:  # the task and its limits: a user error (one line, exit 2)
        raise UserError(str(e)) from e
    finally:
        D.shutdown()


if __name__ == "__main__":  # a UserError is one line `python -m gato.train: error: ...`, exit 2
    sys.exit(run_command(main, prog="python -m gato.train"))
