"""Prompt files: one demonstration episode that conditions the policy (spec sections 7 and 10).

A prompt file holds one episode in the JAT column layout (gato/jat.py), the task it shows, and
the task's observation/action specs (`spec_to_dict`), so a file made for another task or another
observation layout is refused with a clear error instead of silently mis-conditioning the model.

Formats, chosen by suffix (read and written by gato/prompt_files.py, which bounds what a file
may declare: nesting depth, integer digits, array shapes and dtypes, all checked before anything
is allocated):
  .pkl   a dict of plain containers and numpy arrays, read with a RESTRICTED unpickler: only the
         numpy functions that rebuild arrays and a few builtin containers can be named by the
         file; any other global (os.system, pathlib.Path.touch, ...) is refused before it runs.
  .npz   numpy arrays, read with allow_pickle=False; the metadata is a JSON string.
  .json  plain JSON (arrays as {"dtype", "shape", "data"}): readable, large for images.

Write one from collected data (the best episode) or from the task's expert:

    python -m gato.prompts --task cartpole.balance --out demo.pkl [--data-dir data]
    python -m gato.prompts --task babyai.go-to-red-ball --out demo.pkl --from-expert --seed 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gato.cli import add_debug_flag
from gato.errors import UserError, run_command
from gato.jat import TEXT_OBS, Episode, episode_to_sequence
from gato.prompt_files import (  # noqa: F401 (the file formats, re-exported)
    FORMAT,
    SUFFIXES,
    VERSION,
    Prompt,
    PromptError,
    RestrictedUnpickler,
    read_prompt_file,
    restricted_loads,
    write_prompt_file,
)
from gato.sequence import TokenSequence
from gato.specs import DiscreteSpec, ImageSpec, TextSpec, spec_to_dict

# ------------------------------------------------------------------------- file <-> Episode


def _payload(episode: Episode, task_info) -> dict:
    obs = {}
    for col, value in episode.observations.items():
        obs[col] = [str(s) for s in value] if col == TEXT_OBS else np.asarray(value)
    return {
        "format": FORMAT,
        "version": VERSION,
        "task": task_info.name,
        "obs_spec": spec_to_dict(task_info.obs_spec),
        "action_spec": spec_to_dict(task_info.action_spec),
        "episode": {
            "observations": obs,
            "actions": np.asarray(episode.actions),
            "rewards": np.asarray(episode.rewards, np.float32),
            "seed": episode.seed,
            "episode_index": episode.episode_index,
            "success": episode.success,
        },
    }


def save_prompt(path: str | Path, episode: Episode, task: str | Any) -> Path:
    """Write `episode` of `task` (a name or a TaskInfo) as a prompt file (.pkl, .npz or .json);
    the episode is checked against the task's layout first."""
    from gato.envs import get_task

    task_info = get_task(task) if isinstance(task, str) else task
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise PromptError(f"{path}: unknown prompt format; use one of {', '.join(SUFFIXES)}")
    check_episode_layout(episode, task_info, str(path))
    write_prompt_file(path, _payload(episode, task_info))
    return path


def load_prompt(path: str | Path, task: str | Any | None = None) -> Prompt:
    """Read a prompt file (nothing in it is executed); with `task` (a name or a TaskInfo),
    also check that it is a demonstration of that task with that task's layout."""
    path = Path(path)
    prompt = read_prompt_file(path)
    if task is not None:
        check_prompt(prompt, task, str(path))
    return prompt


# ---------------------------------------------------------------------------------- checks


def check_prompt(prompt: Prompt, task: str | Any, source: str = "the prompt") -> None:
    """Raise PromptError unless `prompt` demonstrates `task` with the task's layout."""
    from gato.envs import canonical_name, get_task

    task_info = get_task(task) if isinstance(task, str) else task
    try:
        prompt_task = canonical_name(prompt.task)
    except ValueError:
        prompt_task = prompt.task
    if prompt_task != task_info.name:
        raise PromptError(
            f"{source} is a demonstration of {prompt.task!r}, not of {task_info.name!r}: "
            f"make one with `python -m gato.prompts --task {task_info.name} --out FILE`"
        )
    for what, recorded, actual in (
        ("observation", prompt.obs_spec, spec_to_dict(task_info.obs_spec)),
        ("action", prompt.action_spec, spec_to_dict(task_info.action_spec)),
    ):
        if recorded != actual:
            raise PromptError(
                f"{source} records the {what} spec {json.dumps(recorded)}, but task "
                f"{task_info.name!r} now has {json.dumps(actual)}: remake the prompt file"
            )
    check_episode_layout(prompt.episode, task_info, source)


def check_episode_layout(episode: Episode, task_info, source: str = "the episode") -> None:
    """Raise PromptError unless the episode's columns and shapes are those of the task."""
    t = episode.num_steps
    if t == 0:
        raise PromptError(f"{source}: the episode has no steps")
    want, have = set(task_info.obs_spec), set(episode.observations)
    if want != have:
        raise PromptError(
            f"{source}: observation columns {sorted(have)} do not match task "
            f"{task_info.name!r}, which has {sorted(want)}"
        )
    for col, leaf in task_info.obs_spec.items():
        value = episode.observations[col]
        if isinstance(leaf, TextSpec):
            if len(value) != t or not all(isinstance(s, str) for s in value):
                raise PromptError(f"{source}: {col} must be {t} strings, one per step")
            continue
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise PromptError(f"{source}: {col} has non-numeric dtype {arr.dtype}")
        if isinstance(leaf, ImageSpec):
            ok = arr.shape == (t, *leaf.shape)
        else:  # JAT stores tensors flattened per step
            ok = arr.shape[:1] == (t,) and int(np.prod(arr.shape[1:])) == leaf.size
        if not ok:
            raise PromptError(
                f"{source}: {col} has shape {arr.shape}, but task {task_info.name!r} expects "
                f"{t} steps of {leaf.shape}"
            )
    spec = task_info.action_spec
    actions = np.asarray(episode.actions)
    if actions.shape[:1] != (t,) or int(np.prod(actions.shape[1:])) != spec.size:
        raise PromptError(
            f"{source}: actions have shape {actions.shape}, but task {task_info.name!r} "
            f"expects {t} steps of {spec.shape}"
        )
    if isinstance(spec, DiscreteSpec) and (
        actions.dtype.kind not in "iu" or actions.min() < 0 or actions.max() >= spec.n
    ):
        raise PromptError(f"{source}: discrete actions must be integers in [0, {spec.n})")


def steps_for_tokens(task_info, tokens: int) -> int:
    """Enough steps of an episode of this task to make at least `tokens` tokens: each step has
    at least its image patches, tensors, the separator and the action, counted by the layout's
    one formula (gato.data_sources.fixed_timestep_tokens); text only adds, so it is left out of
    this lower bound (counting the longest mission would make too few steps for short ones)."""
    from gato.data_sources import fixed_timestep_tokens

    per_step = fixed_timestep_tokens(task_info.obs_spec, task_info.action_spec)
    return max(1, -(-tokens // per_step))


def truncate_episode(episode: Episode, steps: int) -> Episode:
    """The first `steps` steps of an episode (a prompt never needs more than it tokenizes)."""
    obs = {
        k: list(v[:steps]) if isinstance(v, list | tuple) else np.asarray(v)[:steps]
        for k, v in episode.observations.items()
    }
    return Episode(
        task=episode.task,
        observations=obs,
        actions=np.asarray(episode.actions)[:steps],
        rewards=np.asarray(episode.rewards)[:steps],
        seed=episode.seed,
        episode_index=episode.episode_index,
        success=episode.success,
    )


# ------------------------------------------------------------------------ choosing a demo


def prompt_sequence(prompt, task_info, prompt_tokens: int, text_tokenizer=None) -> TokenSequence:
    """A demonstration (Episode, TokenSequence or gato.prompts.Prompt) -> its first
    `prompt_tokens` tokens, none of them a loss target (a prompt is context only)."""
    episode = getattr(prompt, "episode", prompt)  # a gato.prompts.Prompt holds an Episode
    if isinstance(episode, Episode):
        # Only the steps the prompt can use are tokenized (a long Atari episode is thousands
        # of frames).
        steps = steps_for_tokens(task_info, prompt_tokens)
        if episode.num_steps > steps:
            episode = truncate_episode(episode, steps)
        seq = episode_to_sequence(episode, task_info, text_tokenizer)
    elif isinstance(episode, TokenSequence):
        seq = episode
    else:
        raise TypeError(
            f"a prompt must be an Episode, a TokenSequence or a loaded prompt file, "
            f"got {type(prompt).__name__}"
        )
    return seq.window(0, min(prompt_tokens, len(seq))).without_targets()


def rank_demonstrations(episodes: list[Episode]) -> list[Episode]:
    """Best first: successful episodes before the others, then by return, then by index."""
    return sorted(
        episodes,
        key=lambda e: (e.success is False, -e.total_return, e.episode_index or 0),
    )


def demonstrations(task: str, data_dir=None, count: int = 1, seed: int = 0) -> list[Episode]:
    """Up to `count` successful demonstrations of `task`, best first: from the collected data
    (episodes passing the 80% filter), or rolled out by the task's expert if none were
    collected (seeds seed, seed + 1, ...)."""
    from gato.datasets import load_task_episodes
    from gato.experts import has_expert

    try:
        episodes = load_task_episodes(task, data_dir, filtered=True)
    except FileNotFoundError as e:
        if not has_expert(task):
            raise PromptError(f"no demonstration of {task!r}: {e}; and it has no expert") from e
        episodes = []
    if episodes:
        return rank_demonstrations(episodes)[:count]
    return expert_demonstrations(task, count, seed)


def expert_demonstrations(task: str, count: int = 1, seed: int = 0) -> list[Episode]:
    """Roll out the task's expert (`count` episodes from seeds seed, seed + 1, ...), best first."""
    from gato.collect_workers import run_episode
    from gato.envs import get_task, make_env
    from gato.experts import make_expert

    if count < 1:
        raise ValueError(f"expert episodes must be at least 1, got {count}")
    info = get_task(task)
    env = make_env(info.name, seed=seed)
    try:
        episodes = []
        for i in range(count):
            expert = make_expert(info.name, env)
            episodes.append(run_episode(env, expert, info, seed + i, info.max_episode_steps))
            episodes[-1].episode_index = i
    finally:
        env.close()
    return rank_demonstrations(episodes)


# ------------------------------------------------------------------------------- the command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gato.prompts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", required=True, help="task name (canonical or JAT alias)")
    parser.add_argument("--out", required=True, help="prompt file to write: .pkl, .npz or .json")
    parser.add_argument(
        "--data-dir", default=None, help="collected data (default: $GATO_DATA or ./data)"
    )
    parser.add_argument(
        "--from-expert", action="store_true", help="roll out the expert even if data exists"
    )
    parser.add_argument(
        "--expert-episodes",
        type=int,
        default=1,
        help="expert episodes to roll out; the best is kept (default: 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="first expert seed (default: 0)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    from gato.cli import check_at_least, check_data_dir
    from gato.deploy import task_by_flag

    check_at_least(args, {"expert_episodes": 1})
    check_data_dir(args.data_dir)
    out = Path(args.out)
    if out.suffix not in SUFFIXES:
        raise PromptError(f"--out {out}: unknown prompt format; use one of {', '.join(SUFFIXES)}")
    info = task_by_flag(args.task, "--task")
    try:  # before the demonstration is made: a folder that cannot exist fails now
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out} cannot be written ({e.strerror or e})") from e
    if args.from_expert:
        demo = expert_demonstrations(info.name, args.expert_episodes, args.seed)[0]
    else:
        demo = demonstrations(info.name, args.data_dir, 1, args.seed)[0]
    try:
        path = save_prompt(out, demo, info)
    except OSError as e:
        raise UserError(f"--out {out} cannot be written ({e.strerror or e})") from e
    print(
        f"wrote {path}: {info.name}, {demo.num_steps} steps, return {demo.total_return:.3f}"
        + ("" if demo.success is None else f", success {demo.success}")
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main, prog="python -m gato.prompts"))
