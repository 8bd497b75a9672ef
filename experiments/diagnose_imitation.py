"""Where does a cloned policy part from its expert? Two measurements for one checkpoint and task.

    python experiments/diagnose_imitation.py --checkpoint runs/ladder/cartpole.balance/train \
        --task cartpole.balance

1. Teacher-forced: on recorded expert episodes (the last shard of --data-dir/<task>), the
   greedy action token the model predicts after the true context, against the recorded one, at
   the first --early steps of each episode and at later steps (windows of --context tokens
   ending there). A policy that only learned the long rest of an episode predicts it exactly and
   misses the start.
2. Closed loop: one episode where the policy acts (greedy, prompted with a recorded episode) and
   the expert is asked, at every state the policy reaches, what it would do; printed every
   --print-every steps with the gap in bins. Beside it, the return of sending the middle of the
   action space every step on the same seed: a policy that ignores its observations scores
   about that.

Continuous bins are 2/1024 wide, so an error of 10 bins is 0.02 in action units; discrete
actions count a mismatch as any nonzero error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain script: import this checkout's gato


@dataclass
class DiagnoseArgs:
    """Options of ``python experiments/diagnose_imitation.py``."""

    checkpoint: str = ""
    """checkpoint folder or run folder (its newest checkpoint)"""
    task: str = "cartpole.balance"
    """the task to diagnose"""
    data_dir: str = "data"
    """collected expert data (its last shard is read)"""
    episodes: int = 10
    """recorded episodes for the teacher-forced measurement"""
    early: int = 15
    """steps counted as an episode's start"""
    context: int = 512
    """context tokens of the teacher-forced windows and of the closed-loop policy"""
    prompt_tokens: int = -1
    """closed loop: tokens of the recorded episode fed as prompt (-1: the whole context, as
    gato.evaluate does by default; 0: none, as the short-window ladder recipes roll out)"""
    memory: str = "sliding"
    """closed loop: the policy's memory, 'sliding' or 'window' (gato/policy.py)"""
    steps: int = 1000
    """steps of the closed-loop episode (at most the task's limit)"""
    seed: int = 2_000_000
    """seed of the closed-loop episode (evaluation seeds start at 2,000,000)"""
    print_every: int = 50
    """closed loop: print one line per this many steps"""
    threads: int = 2
    """torch CPU threads"""


def teacher_forced(model, info, episodes, early: int, context: int) -> dict[str, np.ndarray]:
    """{"start": errors, "later": errors}: predicted minus recorded action token, per action."""
    from gato.inputs import GatoInputs
    from gato.jat import episode_to_sequence
    from gato.sequence import Kind
    from gato.specs import action_token_bounds

    lo, hi = action_token_bounds(info.action_spec)
    n_act = len(lo)
    errors: dict[str, list[int]] = {"start": [], "later": []}
    for episode in episodes:
        seq = episode_to_sequence(episode, info)
        positions = np.flatnonzero(seq.kinds == Kind.ACTION)  # (steps * n_act,)
        later = positions[early * n_act :: max(1, len(positions) // (4 * early))][: early * n_act]
        for name, picks in (("start", positions[: early * n_act]), ("later", later)):
            for p in picks:
                start = max(0, int(p) - context)
                with torch.inference_mode():
                    logits, _ = model(
                        GatoInputs.from_sequences([seq.window(start, int(p))]), last_only=True
                    )  # (1, V): the logits that predict token p
                k = int(np.searchsorted(positions, p)) % n_act  # the action dimension
                pred = int(torch.argmax(logits[0, lo[k] : hi[k]])) + int(lo[k])
                errors[name].append(pred - int(seq.tokens[p]))
    return {k: np.asarray(v) for k, v in errors.items()}


def closed_loop(model, info, args: DiagnoseArgs, demo) -> None:
    from gato.envs import make_env
    from gato.experts import make_expert
    from gato.policy import GatoPolicy
    from gato.serialize import tokenize_actions

    env = make_env(args.task, seed=args.seed)
    obs, _ = env.reset(seed=args.seed)
    expert = make_expert(args.task, env)
    expert.reset(env, obs)
    prompt_tokens = args.context if args.prompt_tokens < 0 else args.prompt_tokens
    policy = GatoPolicy(
        model,
        info,
        context_tokens=args.context,
        prompt_tokens=prompt_tokens,
        greedy=True,
        seed=0,
        memory=args.memory,
    )
    policy.reset(prompt=demo if prompt_tokens else None, seed=0)
    total, gaps = 0.0, []
    for t in range(args.steps):
        action, wanted = policy.act(obs), expert.act(obs)
        ours = tokenize_actions(np.asarray(action)[None], info.action_spec, 1)
        theirs = tokenize_actions(np.asarray(wanted)[None], info.action_spec, 1)
        gaps.append(np.abs(ours.astype(np.int64) - theirs.astype(np.int64)).max())
        if hasattr(expert, "executed"):
            expert.executed(action)
        if t % args.print_every == 0:
            print(
                f"  t={t:4d}  policy {np.round(action, 4)}  expert {np.round(wanted, 4)}  "
                f"gap {gaps[-1]} bins  reward {total / max(t, 1):.2f}/step  "
                f"obs {np.round(_flat(obs)[:6], 3)}"
            )
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    print(
        f"closed loop: return {total:.1f} over {len(gaps)} steps, median gap "
        f"{np.median(gaps):.0f} bins, gap > 10 bins on {np.mean(np.asarray(gaps) > 10):.0%} "
        "of steps"
    )


def _flat(obs) -> np.ndarray:
    """The observation's numeric leaves, concatenated (for printing)."""
    if isinstance(obs, dict):
        leaves = [np.ravel(v) for v in obs.values() if np.asarray(v).dtype.kind in "fiu"]
        return np.concatenate(leaves) if leaves else np.zeros(0)
    return np.ravel(obs)


def zero_action_return(task: str, seed: int, steps: int) -> float | None:
    """The return of always sending the middle of a continuous action space (None for discrete
    actions): the bar a policy that ignores its observations clears (cartpole.balance's pole
    falls slowly enough that doing nothing beats a random policy by far)."""
    from gato.envs import get_task, make_env
    from gato.specs import ContinuousSpec

    spec = get_task(task).action_spec
    if not isinstance(spec, ContinuousSpec):
        return None
    env = make_env(task, seed=seed)
    env.reset(seed=seed)
    middle = ((np.asarray(spec.low) + np.asarray(spec.high)) / 2).astype(np.float32)
    middle = np.broadcast_to(middle, spec.shape).copy()  # bounds may be given as scalars
    total = 0.0
    for _ in range(steps):
        _, reward, terminated, truncated, _ = env.step(middle)
        total += float(reward)
        if terminated or truncated:
            break
    return total


def main(argv: list[str] | None = None) -> int:
    from gato.checkpoint import load_model
    from gato.cli import parse_dataclass_args
    from gato.envs import get_task
    from gato.jat import read_shard, shard_paths
    from gato.rollout import MEMORIES

    args, parser = parse_dataclass_args(
        DiagnoseArgs,
        argv,
        "python experiments/diagnose_imitation.py",
        __doc__,
        {"memory": MEMORIES},
    )
    if not args.checkpoint:
        parser.error("--checkpoint is required")
    if args.prompt_tokens < -1:
        parser.error(
            f"--prompt-tokens must be -1 (the whole context) or >= 0, got {args.prompt_tokens}"
        )
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)[0]
    info = get_task(args.task)
    shards = shard_paths(Path(args.data_dir) / args.task)
    if not shards:
        parser.error(f"no episodes of {args.task} in {args.data_dir}")
    episodes = read_shard(shards[-1])[: args.episodes]
    errors = teacher_forced(model, info, episodes, args.early, args.context)
    for name, e in errors.items():
        e = np.abs(e)
        print(
            f"teacher-forced, {name} of episodes ({len(e)} action tokens): exact "
            f"{np.mean(e == 0):.0%}, mean |error| {e.mean():.1f} bins, max {e.max()}"
        )
    closed_loop(model, info, args, episodes[-1])
    zero = zero_action_return(args.task, args.seed, args.steps)
    if zero is not None:
        print(f"the middle action every step, same seed: return {zero:.1f}")
    return 0


if __name__ == "__main__":
    from gato.errors import run_command

    sys.exit(run_command(main, prog="python experiments/diagnose_imitation.py"))
