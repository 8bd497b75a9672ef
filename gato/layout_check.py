"""Preflight: does one whole timestep of every task fit the model's tables and context?

A timestep (spec section 3) is [text, image patches, tensors, '|', action]; its tokens take local
positions 0 .. n - 1, so a timestep of n tokens needs n entries of the local-position table
(``max_local_positions``), and a context shorter than n never holds an observation together
with its action. The model raises on a position outside its table (gato/embedding.py); this
check refuses a run before it starts, naming the task, its timestep length and the limits.

    check_tasks_fit([get_task("babyai.open")], get_config("debug"))  # LayoutError: no fit

Timestep lengths come from gato/data_sources.py's count of the layout (the one training offsets
use). Text observations (BabyAI's mission) vary in length: a :class:`TaskLayout` measured from the
data gives the exact longest timestep (``layouts_from_sources``); a task known only by its specs
(a ``TaskInfo``) has its text measured with the project's SentencePiece model on the missions of
``TEXT_SAMPLES`` environment resets. A longer mission met later still cannot pass silently: the
model raises on its positions.

Vision-language rows (gato/vl/sources.py) are five (image, text) pairs whose tokens take local
positions 0 .. n - 1 pair by pair: the longest pair must fit the local-position table (a
:class:`PairLayout`, checked here). A row longer than the context is not refused: the sampler
crops it to L at a uniformly random offset, which is the paper's behaviour for these sequences
(GATO_SPEC.md sections 3 and 12), never a silent clamp.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from gato.config import GatoConfig
from gato.data_sources import TaskEpisodes, fixed_timestep_tokens
from gato.specs import TextSpec, ordered_leaves

TEXT_SAMPLES = 64
"""Environment resets whose text observations size a task's text, when no data measures it."""


class LayoutError(ValueError):
    """A task's timestep does not fit the model's local-position table or its context."""


@dataclass(frozen=True)
class TaskLayout:
    """What the check needs of a task: its name and specs, and (for text observations) the text
    tokens of its longest timestep as measured on data; None measures them from the env."""

    name: str
    obs_spec: dict
    action_spec: object
    text_tokens: int | None = None


@dataclass(frozen=True)
class PairLayout:
    """A vision-language task: the tokens of its longest (image, text) pair (image patches and
    text), and of one image."""

    name: str
    pair_tokens: int
    image_tokens: int


def layouts_from_sources(sources: Iterable) -> list[TaskLayout | PairLayout]:
    """The exact layouts of a sampler's task sources (text documents have no timesteps: every
    document token has local position 0). One task listed by several sources (the train and
    validation splits) keeps its longest text."""
    out: dict[str, TaskLayout | PairLayout] = {}
    for s in sources:
        if hasattr(s, "longest_pair") and len(s):  # gato.vl.sources.PairSource
            longest = s.longest_pair()
            if s.task in out:
                longest = max(longest, out[s.task].pair_tokens)
            out[s.task] = PairLayout(s.task, longest, s.patches_per_image)
            continue
        if not isinstance(s, TaskEpisodes) or len(s) == 0:
            continue
        text = s.longest_timestep() - s.fixed_tokens
        if s.task in out:
            text = max(text, out[s.task].text_tokens or 0)
        out[s.task] = TaskLayout(s.task, s.obs_spec, s.action_spec, text)
    return list(out.values())


def _text_paths(obs_spec) -> list[tuple[str, ...]]:
    return [path for path, leaf in ordered_leaves(obs_spec) if isinstance(leaf, TextSpec)]


@cache
def sampled_text_tokens(task: str, samples: int = TEXT_SAMPLES) -> int:
    """The most text tokens of one observation over `samples` resets of the task's env (seeds
    0 .. samples - 1), counted as training counts them: the project's SentencePiece ids."""
    from gato.envs import get_task, make_env
    from gato.text import get_text_tokenizer

    paths = _text_paths(get_task(task).obs_spec)
    if not paths:
        return 0
    tokenizer = get_text_tokenizer()
    env = make_env(task, seed=0)
    longest = 0
    try:
        for seed in range(samples):
            # minigrid prints a line per rejected level layout while sampling missions.
            with contextlib.redirect_stdout(io.StringIO()):
                obs, _ = env.reset(seed=seed)
            n = 0
            for path in paths:
                value = obs
                for key in path:
                    value = value[key]
                n += len(tokenizer.encode(value))
            longest = max(longest, n)
    finally:
        env.close()
    return longest


def timestep_tokens(task_info) -> int:
    """Tokens of the task's longest timestep: observation, '|' and action (module docstring).
    `task_info`: a TaskInfo or a TaskLayout."""
    n = fixed_timestep_tokens(task_info.obs_spec, task_info.action_spec)
    if _text_paths(task_info.obs_spec):
        measured = getattr(task_info, "text_tokens", None)
        n += sampled_text_tokens(task_info.name) if measured is None else measured
    return n


def check_tasks_fit(task_infos, config: GatoConfig, context_tokens: int | None = None) -> None:
    """Raise LayoutError unless one whole timestep of every task fits `config`'s local-position
    table and the context (`context_tokens`, default the config's block_size). `task_infos`:
    TaskInfos, TaskLayouts or task names. One message names every task that does not fit."""
    context = config.block_size if context_tokens is None else int(context_tokens)
    context_name = "block_size" if context_tokens is None else "context_tokens"
    if context < 1:
        raise LayoutError(f"the context must hold at least one token, got {context}")
    problems = []
    for info in task_infos:
        if isinstance(info, PairLayout):
            if info.pair_tokens > config.max_local_positions:
                problems.append(
                    f"task {info.name!r} has (image, text) pairs of {info.pair_tokens} tokens "
                    f"({info.image_tokens} image patches + text), more than the model's "
                    f"{config.max_local_positions} local positions (max_local_positions)"
                )
            continue  # a row longer than the context is cropped to L (module docstring)
        if isinstance(info, str):
            from gato.envs import get_task

            info = get_task(info)
        n, action = timestep_tokens(info), info.action_spec.size
        too_long = []
        if n > config.max_local_positions:
            too_long.append(f"{config.max_local_positions} local positions (max_local_positions)")
        if n > context:
            too_long.append(f"{context}-token context ({context_name})")
        if too_long:
            problems.append(
                f"task {info.name!r} has timesteps of {n} tokens ({n - 1 - action} observation "
                f"+ '|' + {action} action), more than the model's {' and '.join(too_long)}"
            )
    if problems:
        raise LayoutError(
            "; ".join(problems)
            + f" [model: max_local_positions {config.max_local_positions}, context {context}]; "
            "choose a larger size or a longer --seq-len / context"
        )
