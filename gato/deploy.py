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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gato.cli import check_at_least, parse_dataclass_args
from gato.errors import UserError, run_command
from gato.prompts import Prompt, PromptError, load_prompt  # noqa: F401 (re-exported)
from gato.rollout import MEMORIES

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
    """where to look for the newest checkpoint (trained on the task) when --checkpoint is not
    given"""
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
    memory: str | None = None
    """'sliding' or 'window' memory, as in gato.evaluate (default: window for a task trained on
    packed windows, whose window and prompt budget then also set the context defaults)"""
    device: str = "cpu"
    """torch device, e.g. cpu or cuda"""
    bf16: bool = False
    """run the policy in bfloat16 (CUDA devices with bf16 support, or the CPU)"""
    video: str | None = None
    """record every episode into this video file (.mp4 / .gif)"""
    fps: int | None = None
    """video frame rate (default: the env's render_fps, else 30)"""
    allow_unseen_task: bool = False
    """run a task the checkpoint was not trained on (by its recorded task list)"""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)"""


# ------------------------------------------------------------------------------ checkpoints


def check_task_trained(task: str, state: dict, allow_unseen: bool = False) -> None:
    """PromptError if the checkpoint lists its tasks and `task` is not one of them."""
    from gato.checkpoint import checkpoint_tasks
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


# ------------------------------------------------------------------------------- reporting


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


def policy_layout(args: DeployArgs, task: str, windows=None) -> tuple[int | None, int | None, str]:
    """(context tokens, prompt tokens, memory) for `task`: the flags, else the checkpoint's
    packed training window (`windows`: gato.checkpoint.trained_windows), as gato.evaluate."""
    from gato.evaluate_workers import PolicyOptions

    options = PolicyOptions(
        args.context_tokens, args.prompt_tokens, memory=args.memory, windows=windows or {}
    )
    return options.for_task(task)


def build_policy(model, task_info, args: DeployArgs, seed: int, windows=None):
    """The policy for `args`; `windows`: gato.checkpoint.trained_windows of the checkpoint."""
    from gato.policy import GatoPolicy

    context, prompt, memory = policy_layout(args, task_info.name, windows)
    return GatoPolicy(
        model,
        task_info,
        context_tokens=context,
        prompt_tokens=prompt,
        greedy=args.greedy,
        temperature=args.temperature,
        use_cache=not args.no_cache,
        seed=seed,
        device=args.device,
        memory=memory,
    )


def main(argv: list[str] | None = None) -> int:
    """The command; a mistake in its input is a UserError (one line, exit 2 via run_command)."""
    args, _ = parse_dataclass_args(
        DeployArgs, argv, "python -m gato.deploy", __doc__, {"memory": MEMORIES}
    )
    check_args(args)
    import torch

    from gato.checkpoint import CheckpointError, newest_checkpoint, trained_windows
    from gato.cli import load_user_checkpoint
    from gato.envs import make_env
    from gato.layout_check import LayoutError, check_tasks_fit
    from gato.rollout import GatoActor, RolloutJob, run_rollouts

    if args.threads:
        torch.set_num_threads(args.threads)
    prompt = load_prompt(args.prompt) if args.prompt else None
    info = task_by_flag(args.task or prompt.task, "--task" if args.task else f"{args.prompt}")
    if prompt is not None:
        from gato.prompts import check_prompt

        check_prompt(prompt, info, args.prompt)
    task = None if args.allow_unseen_task else info.name
    try:
        ckpt_path = args.checkpoint or newest_checkpoint(args.runs_dir, task)
    except CheckpointError as e:
        raise UserError(str(e)) from e
    model, ckpt = load_user_checkpoint(ckpt_path, device=args.device)
    check_task_trained(info.name, ckpt.state, args.allow_unseen_task)
    windows = trained_windows(ckpt.state)
    try:
        check_tasks_fit([info], ckpt.config, policy_layout(args, info.name, windows)[0])
        if args.bf16:
            model = model.to(check_bf16(args.device))
    except (LayoutError, ValueError) as e:
        raise UserError(str(e)) from e
    if prompt is None:
        print("note: no --prompt: the policy acts without a demonstration", file=sys.stderr)
    if args.video:
        check_video_path(args.video)  # before the rollout, not after it
    env = make_env(info.name, seed=args.seed, render_mode="rgb_array" if args.video else None)
    fps = args.fps or int(env.metadata.get("render_fps") or 30)
    video = VideoWriter(args.video, fps) if args.video else None
    policy = build_policy(model, info, args, args.seed, windows)
    print(
        f"{info.name}: checkpoint {ckpt.path} (step {ckpt.step}), context "
        f"{policy.context_tokens} tokens ({policy.memory} memory), prompt "
        f"{policy.prompt_tokens} tokens, {'greedy' if args.greedy else f'T={args.temperature}'}"
        f"{', no cache' if args.no_cache else ''}{', bf16' if args.bf16 else ''}, {args.device}"
    )
    jobs = [
        RolloutJob(info.name, i, args.seed + i, args.max_steps, prompt)
        for i in range(args.episodes)
    ]

    def report(r) -> None:
        done = "" if r.success is None else f", success {r.success}"
        print(
            f"episode {r.job.index + 1}/{args.episodes}: return {r.episode_return:.3f} "
            f"({format_score(info.name, r.episode_return)}), {r.steps} steps{done}, "
            f"median {r.median_action_ms:.1f} ms/action",
            flush=True,
        )

    try:
        on_frame = (lambda job, frame: video(frame)) if video is not None else None
        results = run_rollouts(
            [env], GatoActor(policy), info, jobs, on_frame=on_frame, on_result=report
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


def check_bf16(device: str):
    """torch.bfloat16 if `device` can run it, else a ValueError that says why."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"--bf16: {torch.cuda.get_device_name(dev)} does not support bfloat16")
    if dev.type not in ("cuda", "cpu"):
        raise ValueError(f"--bf16 is supported on cuda and cpu devices, not {dev.type}")
    return torch.bfloat16


def check_args(args: DeployArgs) -> None:
    """UserError naming the flag whose value cannot work (nothing is clamped)."""
    if args.prompt is None and args.task is None:
        raise UserError("give --prompt (a demonstration file) or at least --task")
    minimums = {"episodes": 1, "max_steps": 1, "temperature": 0, "context_tokens": 1}
    check_at_least(args, {**minimums, "prompt_tokens": 0, "fps": 1, "threads": 1})


def task_by_flag(name: str, source: str):
    """gato.envs.get_task(name), an unknown task a UserError naming where it came from."""
    from gato.envs import get_task

    try:
        return get_task(name)
    except ValueError as e:
        hint = "" if "--list" in str(e) else "; `python -m gato.envs --list` lists the tasks"
        raise UserError(f"{source}: {e}{hint}") from e


VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".gif")


def check_video_path(path: str | Path) -> Path:
    """UserError unless a video can be written at `path`: a known suffix, a folder that exists
    or can be made, a file that can be opened for writing (an existing one is left intact)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(
            f"--video {path}: unknown video format {path.suffix or '(no suffix)'}; "
            f"use one of {', '.join(VIDEO_SUFFIXES)}"
        )
    if path.is_dir():
        raise UserError(f"--video {path} is a folder: give a file, e.g. {path / 'out.mp4'}")
    folder = next(p for p in path.parents if p.exists())  # the filesystem root exists
    if not folder.is_dir():
        raise UserError(f"--video {path} cannot be written: {folder} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "ab"):
            pass
        if not existed:
            path.unlink()
    except OSError as e:
        raise UserError(
            f"--video {path} cannot be written ({e.strerror or e}): choose a writable path"
        ) from e
    return path


if __name__ == "__main__":
    sys.exit(run_command(main, prog="python -m gato.deploy"))
