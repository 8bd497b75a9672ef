"""Run a trained Gato in a task's environment, prompted with a demonstration (spec section 10).

    python -m gato.deploy --prompt demo.pkl                  # newest checkpoint under runs/
    python -m gato.deploy --prompt demo.pkl --episodes 5 --greedy --video out.mp4

Prints each episode's return, its expert-normalized score (gato/scores.py; 'n/a' for a task
without a score entry) and the median wall time per action. Make a prompt file with
`python -m gato.prompts --task TASK --out demo.pkl`.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gato.cli import parse_dataclass_args
from gato.prompts import Prompt, PromptError, load_prompt  # noqa: F401 (re-exported)

DEFAULT_RUNS_DIR = "runs"


@dataclass
class DeployArgs:
    """Options of ``python -m gato.deploy``."""

    prompt: str | None = None
    """prompt file (.pkl, .npz or .json) holding a successful demonstration of the task"""
    task: str | None = None
    """task to run (default: the prompt file's task; must match it)"""
    checkpoint: str | None = None
    """checkpoint folder or run folder (default: the newest checkpoint under --runs-dir)"""
    runs_dir: str = DEFAULT_RUNS_DIR
    """where to look for the newest checkpoint when --checkpoint is not given"""
    episodes: int = 1
    """episodes to run"""
    max_steps: int | None = None
    """cap on agent steps per episode (default: the task's episode limit)"""
    seed: int = 0
    """episode i resets the env and the sampler with seed + i"""
    greedy: bool = False
    """take the most likely valid token instead of sampling"""
    temperature: float = 1.0
    """sampling temperature (0 = greedy)"""
    context_tokens: int | None = None
    """attention window of the sliding memory (default: the model's block_size)"""
    prompt_tokens: int | None = None
    """tokens of the demonstration fed as prompt (default: context_tokens)"""
    no_cache: bool = False
    """recompute the whole context for every token instead of using the KV cache (slow)"""
    device: str = "cpu"
    """torch device, e.g. cpu or cuda"""
    video: str | None = None
    """record every episode into this video file (.mp4 / .gif)"""
    fps: int | None = None
    """video frame rate (default: the env's render_fps, else 30)"""
    allow_unseen_task: bool = False
    """run a task the checkpoint was not trained on (by its recorded task list)"""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)"""


# ------------------------------------------------------------------- dataclass -> argparse


# ------------------------------------------------------------------------------ checkpoints


def newest_checkpoint(runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """The most recently written complete checkpoint under runs_dir (by modification time,
    across every run folder), or a clear error if there is none."""
    from gato.checkpoint import MANIFEST_FILE, CheckpointError, list_checkpoints

    root = Path(runs_dir)
    found: list[Path] = []
    if root.is_dir():
        folders = [root, *root.iterdir(), *root.glob("*/*")]
        for folder in folders:
            if folder.is_dir():
                found.extend(list_checkpoints(folder))
    if not found:
        raise CheckpointError(
            f"no checkpoint under {root}/ (looked for {root}/<run>/checkpoints/step_*/): "
            "train one first or pass --checkpoint"
        )
    return max(set(found), key=lambda p: ((p / MANIFEST_FILE).stat().st_mtime, str(p)))


def checkpoint_tasks(state: dict) -> list[str] | None:
    """The task names a checkpoint records having been trained on (state['tasks'], a list of
    names or a dict keyed by name), or None if it records none."""
    tasks = state.get("tasks")
    if isinstance(tasks, dict):
        return sorted(tasks)
    if isinstance(tasks, list | tuple) and all(isinstance(t, str) for t in tasks):
        return list(tasks)
    return None


def check_task_trained(task: str, state: dict, allow_unseen: bool = False) -> None:
    """PromptError if the checkpoint lists its tasks and `task` is not one of them."""
    from gato.envs import canonical_name

    tasks = checkpoint_tasks(state)
    if tasks is None or allow_unseen:
        return
    known = set()
    for t in tasks:
        try:
            known.add(canonical_name(t))
        except ValueError:
            known.add(t)
    if task not in known:
        raise PromptError(
            f"the checkpoint was not trained on {task!r} (its tasks: {', '.join(tasks)}); "
            "pass --allow-unseen-task to run it anyway"
        )


# ------------------------------------------------------------------------------- rollouts


@dataclass
class EpisodeResult:
    """What one rollout did."""

    episode_return: float
    steps: int
    success: bool | None
    action_seconds: list[float] = field(default_factory=list)

    @property
    def median_action_ms(self) -> float:
        return 1000.0 * statistics.median(self.action_seconds) if self.action_seconds else 0.0


def run_episode(
    env,
    policy,
    prompt,
    seed: int,
    max_steps: int,
    on_frame: Callable[[np.ndarray], None] | None = None,
) -> EpisodeResult:
    """One rollout of `policy` from env.reset(seed=seed); frames go to `on_frame` if given.

    Success follows the data collector (gato/collect_workers.py): Meta-World's info['success'],
    BabyAI's positive return; None where the task has no notion of it."""
    obs, _ = env.reset(seed=seed)
    policy.reset(prompt, seed=seed)
    if on_frame is not None:
        on_frame(env.render())
    total, steps, success, saw_success = 0.0, 0, False, False
    times = []
    for _ in range(max_steps):
        start = time.perf_counter()
        action = policy.act(obs)
        times.append(time.perf_counter() - start)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        for key in ("success", "is_success"):
            if key in info:
                saw_success, success = True, success or bool(info[key])
        if on_frame is not None:
            on_frame(env.render())
        if terminated or truncated:
            break
    if policy.task_info.family == "babyai":
        saw_success, success = True, total > 0
    return EpisodeResult(total, steps, success if saw_success else None, times)


def format_score(task: str, episode_return: float) -> str:
    """'57.3% of expert' from gato.scores, or 'n/a' if the task has no score entry."""
    from gato.scores import normalized_score

    try:
        return f"{100 * normalized_score(task, episode_return):.1f}% of expert"
    except (KeyError, ValueError):
        return "n/a"


class VideoWriter:
    """Frames to a video file via imageio's ffmpeg plugin (imageio-ffmpeg ships the binary)."""

    def __init__(self, path: str | Path, fps: int):
        import imageio.v2 as imageio

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"fps": fps}
        if self.path.suffix.lower() in (".mp4", ".mkv", ".mov", ".avi"):
            # yuv420p needs even sides: pad to a multiple of 16 rather than let ffmpeg fail.
            kwargs.update(codec="libx264", macro_block_size=16, ffmpeg_log_level="error")
        self._writer = imageio.get_writer(self.path, **kwargs)
        self.frames = 0

    def __call__(self, frame: np.ndarray) -> None:
        self._writer.append_data(np.asarray(frame, np.uint8))
        self.frames += 1

    def close(self) -> None:
        self._writer.close()


# ------------------------------------------------------------------------------- the command


def build_policy(model, task_info, args: DeployArgs, seed: int):
    from gato.policy import GatoPolicy

    return GatoPolicy(
        model,
        task_info,
        context_tokens=args.context_tokens,
        prompt_tokens=args.prompt_tokens,
        greedy=args.greedy,
        temperature=args.temperature,
        use_cache=not args.no_cache,
        seed=seed,
        device=args.device,
    )


def main(argv: list[str] | None = None) -> int:
    args, parser = parse_dataclass_args(DeployArgs, argv, "python -m gato.deploy", __doc__)
    if args.prompt is None and args.task is None:
        parser.error("give --prompt (a demonstration file) or at least --task")
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    import torch

    from gato.checkpoint import CheckpointError, load_model
    from gato.envs import get_task, make_env

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        prompt = load_prompt(args.prompt) if args.prompt else None
        info = get_task(args.task or prompt.task)
        if prompt is not None:
            from gato.prompts import check_prompt

            check_prompt(prompt, info, args.prompt)
        ckpt_path = args.checkpoint or newest_checkpoint(args.runs_dir)
        model, ckpt = load_model(ckpt_path, device=args.device)
        check_task_trained(info.name, ckpt.state, args.allow_unseen_task)
    except (PromptError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if prompt is None:
        print("note: no --prompt: the policy acts without a demonstration", file=sys.stderr)
    max_steps = args.max_steps or info.max_episode_steps
    env = make_env(info.name, seed=args.seed, render_mode="rgb_array" if args.video else None)
    fps = args.fps or int(env.metadata.get("render_fps") or 30)
    video = VideoWriter(args.video, fps) if args.video else None
    policy = build_policy(model, info, args, args.seed)
    print(
        f"{info.name}: checkpoint {ckpt.path} (step {ckpt.step}), context "
        f"{policy.context_tokens} tokens, {'greedy' if args.greedy else f'T={args.temperature}'}"
        f"{', no cache' if args.no_cache else ''}, {args.device}"
    )
    results = []
    try:
        for i in range(args.episodes):
            r = run_episode(env, policy, prompt, args.seed + i, max_steps, video)
            results.append(r)
            done = "" if r.success is None else f", success {r.success}"
            print(
                f"episode {i + 1}/{args.episodes}: return {r.episode_return:.3f} "
                f"({format_score(info.name, r.episode_return)}), {r.steps} steps{done}, "
                f"median {r.median_action_ms:.1f} ms/action",
                flush=True,
            )
    finally:
        env.close()
        if video is not None:
            video.close()
    returns = [r.episode_return for r in results]
    all_times = [t for r in results for t in r.action_seconds]
    median_ms = 1000 * statistics.median(all_times) if all_times else 0.0
    print(
        f"mean return {np.mean(returns):.3f} over {len(returns)} episode(s) "
        f"({format_score(info.name, float(np.mean(returns)))}); median {median_ms:.1f} ms/action "
        f"({1000 / max(median_ms, 1e-9):.1f} Hz)"
    )
    if video is not None:
        print(f"wrote {video.path} ({video.frames} frames at {fps} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
