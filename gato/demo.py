"""`make demo`: the project's main job on a small default, on a CPU, in a few minutes.

1. collects expert episodes for a few tasks with the project's own experts (`gato.collect`);
2. tokenizes them into Gato sequences (`gato.jat.episode_to_sequence`);
3. trains a small Gato on random windows of those episodes with the masked loss (only action
   tokens are targets here), holding one episode per task out;
4. reports, per task, the held-out loss and how often the model's most likely action token is the
   expert's, before and after training, and draws the loss curve.

Rollouts of the trained model in the environments (deployment, expert-normalized scores) come
with the acting layer; until then this job stops at the held-out imitation metrics.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gato.collect import collect_task
from gato.config import get_config
from gato.datasets import load_task_episodes
from gato.envs import get_task
from gato.inputs import GatoInputs
from gato.jat import episode_to_sequence
from gato.model import Gato
from gato.sequence import Kind, TokenSequence


@dataclass
class DemoArgs:
    """Options of ``python -m gato.demo``."""

    out: Path = Path("runs/demo")
    """folder for the collected data, the loss curve (PNG) and the summary (JSON)"""
    tasks: str = "cartpole.balance,metaworld.reach,babyai.go-to-red-ball"
    """comma-separated tasks to collect and train on"""
    episodes: int = 12
    """expert episodes collected per task (one is held out for evaluation)"""
    size: str = "debug"
    """model size from gato.config.SIZES"""
    steps: int = 400
    """optimizer steps"""
    batch_size: int = 16
    """sequences per step"""
    window: int = 256
    """tokens per training sequence"""
    lr: float = 1e-3
    """peak learning rate (AdamW, linear warm-up then cosine decay to a tenth)"""
    seed: int = 0
    """seed for collection, initialisation and window sampling"""
    workers: int = 2
    """collection worker processes"""


def parse_args(argv=None) -> DemoArgs:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    docs = _field_docs()
    for f in fields(DemoArgs):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(f.default),
            default=f.default,
            help=f"{docs[f.name]} (default: {f.default})",
        )
    return DemoArgs(**vars(parser.parse_args(argv)))


def _field_docs() -> dict[str, str]:
    """The docstring under each DemoArgs field, for --help."""
    import ast
    import inspect

    body = ast.parse(inspect.getsource(DemoArgs)).body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr):
            docs[node.target.id] = nxt.value.value
    return docs


def sample_windows(seqs: list[TokenSequence], count: int, window: int, rng) -> list:
    """`count` windows: a uniformly chosen sequence, then a uniform offset inside it."""
    out = []
    for i in rng.integers(0, len(seqs), count):
        seq = seqs[i]
        start = int(rng.integers(0, max(1, len(seq) - window + 1)))
        out.append(seq.window(start, start + window))
    return out


def evaluation_windows(seq: TokenSequence, window: int, limit: int = 8) -> list:
    """Up to `limit` consecutive windows from the start of a held-out episode."""
    starts = range(0, max(1, len(seq) - window + 1), window)
    return [seq.window(s, s + window) for s in list(starts)[:limit]]


@torch.no_grad()
def evaluate(model: Gato, windows: list, window: int) -> dict:
    """Mean masked loss and action-token accuracy (argmax == expert) over the windows."""
    model.eval()
    inputs = GatoInputs.from_sequences(windows, length=window)
    targets, mask = inputs.next_token_targets()
    logits, loss = model(inputs, targets, mask)
    is_action = (inputs.kinds[:, 1:] == Kind.ACTION)[mask[:, :-1]]
    hits = (logits.argmax(-1) == targets[mask])[is_action]
    model.train()
    return {"loss": float(loss), "action_accuracy": float(hits.float().mean())}


def lr_at(step: int, args: DemoArgs) -> float:
    warmup = max(1, args.steps // 20)
    if step < warmup:
        return args.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, args.steps - warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    print(f"1/4 collecting {args.episodes} expert episodes per task into {args.out / 'data'}")
    tasks = [get_task(name.strip()) for name in args.tasks.split(",")]
    train, held_out = [], {}
    for info in tasks:
        collect_task(
            info,
            args.episodes,
            data_dir=args.out / "data",
            seed=args.seed,
            workers=args.workers,
            random_episodes=2,
        )
        episodes = load_task_episodes(info.name, args.out / "data")
        if len(episodes) < 2:
            raise SystemExit(f"{info.name}: fewer than 2 episodes passed the expert filter")
        seqs = [episode_to_sequence(ep, info) for ep in episodes]
        train += seqs[:-1]
        held_out[info.name] = evaluation_windows(seqs[-1], args.window)
    tokens = sum(len(s) for s in train)
    print(f"2/4 tokenized {len(train)} training episodes: {tokens:,} tokens")

    config = get_config(args.size, block_size=args.window)
    model = Gato(config)
    print(
        f"3/4 training a {args.size} Gato ({model.num_params() / 1e6:.1f}M parameters) for "
        f"{args.steps} steps of {args.batch_size} x {args.window} tokens"
    )
    before = {name: evaluate(model, w, args.window) for name, w in held_out.items()}
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1
    )
    curve = []
    bar = tqdm(range(args.steps), desc="training", unit="step")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args)
        inputs = GatoInputs.from_sequences(
            sample_windows(train, args.batch_size, args.window, rng), length=args.window
        )
        _, loss = model(inputs, *inputs.next_token_targets())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        curve.append(loss.item())
        bar.set_postfix(loss=f"{curve[-1]:.3f}")
    after = {name: evaluate(model, w, args.window) for name, w in held_out.items()}

    print("4/4 held-out episode, one per task (action accuracy: argmax token == expert token)")
    print(
        f"{'task':28} {'loss before':>12} {'loss after':>11} {'acc before':>11} {'acc after':>10}"
    )
    for name in held_out:
        b, a = before[name], after[name]
        print(
            f"{name:28} {b['loss']:12.3f} {a['loss']:11.3f} {b['action_accuracy']:11.1%} "
            f"{a['action_accuracy']:10.1%}"
        )
    plot = plot_curve(curve, args.out / "loss.png")
    summary = {
        "args": {k: str(v) for k, v in asdict(args).items()},
        "train_tokens": tokens,
        "parameters": model.num_params(),
        "before": before,
        "after": after,
        "train_loss": curve,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"loss curve: {plot}\nsummary: {args.out / 'summary.json'} "
        f"({summary['seconds']:.0f} s in all)"
    )
    return summary


def plot_curve(curve: list[float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(curve, lw=0.8, alpha=0.5, label="batch loss")
    k = max(1, len(curve) // 25)
    smooth = np.convolve(curve, np.ones(k) / k, mode="valid")
    ax.plot(np.arange(k - 1, len(curve)), smooth, lw=2, label=f"mean of {k}")
    ax.set(
        xlabel="step",
        ylabel="masked cross-entropy (action tokens)",
        yscale="log",
        title="make demo: training loss",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
