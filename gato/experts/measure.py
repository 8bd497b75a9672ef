"""Measure experts against uniformly random policies; write a markdown table.

    python -m gato.experts.measure --tasks babyai --episodes 20 --out experiments/results/x.md
    python -m gato.experts.measure --tasks cartpole.swingup metaworld.assembly --episodes 20
    python -m gato.experts.measure --list        # tasks that have an expert

`--tasks` takes task names, JAT aliases or family names (all of that family's expert tasks).
Episode i of every task uses reset seed `--seed + i`, for the expert and the random policy alike.
Success is reported where the env reports it: Meta-World `info['success']` at any step, BabyAI a
positive reward.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gato.cli import add_debug_flag
from gato.envs import FAMILIES, get_task, make_env
from gato.errors import OneLineParser, UserError, run_command
from gato.experts import expert_tasks, make_expert, make_random_policy


@dataclass
class Measurement:
    """Returns of one policy on one task."""

    task: str
    """Canonical task name."""
    policy: str
    """'expert' or 'random'."""
    returns: list[float]
    """Undiscounted return of each episode."""
    successes: list[bool] | None
    """Per-episode success where the env reports it, else None."""
    steps: int
    """Environment steps taken over all episodes."""
    seconds: float
    """Wall-clock time of the episodes."""


def run_episodes(
    task: str, policy: str, episodes: int, seed: int, max_episode_steps: int | None = None
) -> Measurement:
    """Runs `episodes` episodes of the expert or random policy, reset seeds seed, seed+1, ..."""
    from gato.rollout import PerEnvActor, RolloutJob, run_rollouts

    info = get_task(task)
    kwargs = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
    env = make_env(info.name, seed=seed, **kwargs)

    def make(job, env):  # a fresh policy per episode: the random one seeded by the episode
        if policy == "expert":
            return make_expert(info.name, env)
        return make_random_policy(info.name, env, job.seed)

    jobs = [RolloutJob(info.name, e, seed + e, max_episode_steps) for e in range(episodes)]
    start = time.perf_counter()
    try:
        results = run_rollouts([env], PerEnvActor(make), info, jobs)
    finally:
        env.close()
    reports_success = info.family in ("metaworld", "babyai")
    return Measurement(
        info.name,
        policy,
        [r.episode_return for r in results],
        [bool(r.success) for r in results] if reports_success else None,
        sum(r.steps for r in results),
        time.perf_counter() - start,
    )


def _run(job) -> Measurement:
    return run_episodes(*job)


def resolve_tasks(names: list[str]) -> list[str]:
    tasks = []
    for name in names:
        if name in FAMILIES:
            tasks.extend(expert_tasks(name))
        else:
            try:
                tasks.append(get_task(name).name)
            except ValueError as e:  # its message names close matches
                raise UserError(f"--tasks: {e} (or a family: {', '.join(FAMILIES)})") from None
    return list(dict.fromkeys(tasks))


def markdown_table(results: dict[str, dict[str, Measurement]], episodes: int) -> str:
    lines = [
        "| task | episodes | expert return (mean ± std) | expert success | random return "
        "(mean ± std) | random success | expert steps/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, by_policy in results.items():
        expert, random_ = by_policy["expert"], by_policy["random"]

        def success(m: Measurement) -> str:
            return "—" if m.successes is None else f"{100 * np.mean(m.successes):.0f}%"

        lines.append(
            f"| {task} | {episodes} | {np.mean(expert.returns):.1f} ± {np.std(expert.returns):.1f}"
            f" | {success(expert)} | {np.mean(random_.returns):.1f} ± "
            f"{np.std(random_.returns):.1f} | {success(random_)} | "
            f"{expert.steps / max(expert.seconds, 1e-9):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(
        prog="python -m gato.experts.measure",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", nargs="+", default=[], help="task names or family names")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="reset seed of the first episode")
    parser.add_argument(
        "--max-episode-steps",
        type=int,
        help="cap episodes (Atari only; the default is 27,000 agent steps)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    parser.add_argument("--list", action="store_true", help="list the tasks with an expert")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    for flag in ("episodes", "workers"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.list:
        for family in FAMILIES:
            print(f"# {family}: " + " ".join(expert_tasks(family)))
        return
    if not args.tasks:
        parser.error("give --tasks (task or family names) or --list")
    tasks = resolve_tasks(args.tasks)
    if args.out is not None and args.out.is_dir():  # found before the rollouts, not after
        raise UserError(f"--out {args.out} is a folder: name the markdown file to write")
    jobs = []
    for task in tasks:
        cap = args.max_episode_steps if get_task(task).family == "atari" else None
        for policy in ("expert", "random"):
            jobs.append((task, policy, args.episodes, args.seed, cap))
    results: dict[str, dict[str, Measurement]] = {task: {} for task in tasks}
    start = time.perf_counter()
    with Pool(args.workers) if args.workers > 1 else _Serial() as pool:
        for m in tqdm(pool.imap(_run, jobs), total=len(jobs), desc="task x policy"):
            results[m.task][m.policy] = m
            tqdm.write(
                f"{m.task:40s} {m.policy:6s} return {np.mean(m.returns):9.2f} ± "
                f"{np.std(m.returns):7.2f}"
                + ("" if m.successes is None else f"  success {100 * np.mean(m.successes):.0f}%")
            )
    table = markdown_table(results, args.episodes)
    print(table)
    print(f"\n{len(tasks)} tasks, {time.perf_counter() - start:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


class _Serial:
    """`multiprocessing.Pool`'s imap, in this process."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, jobs):
        return map(fn, jobs)


if __name__ == "__main__":  # a user error is one line `python -m gato.experts.measure: error: ...`
    sys.exit(run_command(main, prog="python -m gato.experts.measure"))
