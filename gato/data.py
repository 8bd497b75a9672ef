"""Training data: weighted task mixing, random windows, prompt conditioning, worker loading.

    >>> sampler = SequenceSampler(DataConfig(data_dir="data", seq_len=1024))
    >>> batch = sampler.rows(step=0, indices=range(8))        # SampleBatch, batch.batch (8, 1024)
    >>> for step, micro in make_loader(sampler, 0, lambda s: [range(8)]): ...

A training sequence (GATO_SPEC.md sections 3, 7, 8) is built from one source picked by sample
weight (not by dataset size): a task's episode, uniformly among its filtered training episodes,
or a text document. It is a window of ``seq_len`` tokens cut at a uniformly random token offset
(a shorter episode is taken whole and the row right-padded). With probability ``prompt_prob``
an episode's window is preceded by a prompt from *another* episode of the same task: with
probability ``prompt_end_prob`` the end of that episode (goal conditioning), else a uniformly
sampled place. Prompt tokens are never loss targets.

[decision] A prompt has a fixed budget of ``max_prompt_frac * seq_len`` tokens and holds whole
timesteps: the most timesteps that fit (ending at the episode's end, or starting at a uniformly
drawn timestep start among those from which the budget fits), so a prompt reads like the
deployment prompt, which begins at a timestep; only when a single timestep exceeds the budget is
the prompt cut mid-timestep. An episode no longer than the budget is the prompt whole. Text rows
never carry prompts, so with text in the mix the share of prompted rows is below prompt_prob.

[decision] ``window_steps`` > 0 packs rows instead: a row of ``seq_len`` tokens, of one task drawn
by sample weight (so tokens still follow the weights), is filled with windows of
``window_steps`` whole timesteps, each from a random episode at a uniformly drawn timestep
start, and each preceded with probability ``prompt_prob`` by a prompt as above whose budget is
``max_prompt_frac`` of the task's window (``window_steps`` of its longest timesteps, recorded
as ``window_tokens``); the last window is cut to the tokens left. Attention and loss targets
stay inside each window (``TokenBatch.segments``), so a packed row trains exactly like that
many short rows. Why: a policy trained on long windows copied its previous action instead of
reading its state (issue 12, experiments/results/ablations.md); a window of one timestep holds
no earlier action to copy, and packing keeps windows short without padding every row. A
policy rolls out such a model with window memory (gato/policy.py): the prompt and the last
whole timesteps that fit the window. Text and image-caption rows are never packed.

Every random choice of row ``index`` at ``step`` comes from a generator seeded with
``(seed, split, step, index)``, so a row is the same whichever process, worker or rank builds it,
and resuming at any step replays the same data: the sampler has no state to save beyond its
configuration, which :meth:`SequenceSampler.state_dict` records to check a resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gato.data_errors import NoDataError, UnknownTaskError, no_folder, resolve_task
from gato.data_loader import make_loader
from gato.data_mixture import FAMILY_WEIGHTS, HELD_OUT_TASKS, TEXT, resolve_weights
from gato.data_sources import (
    Documents,
    MemoEncoder,
    TaskEpisodes,
    list_complete_tasks,
    load_task,
    read_documents,
)
from gato.data_windows import prompt_span, steps_window, token_window
from gato.datasets import MAKE_DATA_HINT, read_metadata
from gato.sequence import TokenBatch, TokenSequence, collate, concatenate
from gato.vl.sources import PairSource
from gato.vl.tasks import is_language_task, language_family, load_language_source

__all__ = [
    "FAMILY_WEIGHTS",
    "HELD_OUT_TASKS",
    "DataConfig",
    "NoDataError",
    "SampleBatch",
    "SamplePlan",
    "SequenceSampler",
    "UnknownTaskError",
    "make_loader",
    "resolve_weights",
]

SPLITS = ("train", "val")


@dataclass
class DataConfig:
    """What the training sequences are made of."""

    data_dir: str = "data"
    """Collected tasks, one folder per task (the layout of gato.collect / `make data`)."""
    tasks: tuple[str, ...] = ()
    """Tasks to train on; empty = every complete task folder in data_dir except the held-out
    ones (HELD_OUT_TASKS)."""
    task_weights: dict[str, float] = field(default_factory=dict)
    """Sample weight per task name or per family ('dmc', 'metaworld', 'babyai', 'atari',
    'mujoco', 'text'; a family's weight is split equally among its tasks without their own).
    Unspecified: the family's Gato Table 1 weight (FAMILY_WEIGHTS) split equally among the
    family's tasks. Weights are normalized over the tasks present; 0 excludes a task."""
    text_files: tuple[str, ...] = ()
    """Plain-text files (one document each) or .jsonl files ("text" field per line), mixed in as
    the 'text' domain."""
    seq_len: int = 1024
    """L: tokens per training sequence (rows are right-padded to L)."""
    prompt_prob: float = 0.25
    """Share of episode sequences that start with a prompt from another episode of the task."""
    prompt_end_prob: float = 0.5
    """Of the prompts, the share taken from the end of the other episode (else a uniform place)."""
    max_prompt_frac: float = 0.5
    """A prompt's token budget as a share of L, or of a packed window, which it precedes (so
    it may exceed 1 there: 1.0 with window_steps=1 is a prompt of one timestep)."""
    window_steps: int = 0
    """Pack each episode row with windows of this many timesteps, attention inside each
    (module docstring); 0 = one window of seq_len tokens per row, the paper's layout."""
    task_window_steps: dict[str, int] = field(default_factory=dict)
    """window_steps per task name or family (as task_weights names them), over window_steps;
    0 leaves that task's rows unpacked."""
    val_episodes: int = 1
    """Filtered episodes (and text documents) held out per task for validation: the last ones by
    index; a task with fewer than 2 keeps all for training, and at least one is always kept."""
    seed: int = 0
    """Seeds every sampling decision together with (split, step, row index)."""

    def validate(self) -> DataConfig:
        if self.seq_len < 1:
            raise ValueError(f"seq_len must be positive, got {self.seq_len}")
        for name in ("prompt_prob", "prompt_end_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        packed = self.window_steps or any(self.task_window_steps.values())
        if not 0.0 <= self.max_prompt_frac < (8.0 if packed else 1.0):
            within = "[0, 8) with packed windows" if packed else "[0, 1)"
            raise ValueError(f"max_prompt_frac must be in {within}, got {self.max_prompt_frac}")
        if self.val_episodes < 0 or self.seed < 0 or self.window_steps < 0:
            raise ValueError("val_episodes, seed and window_steps must be >= 0")
        bad = {k: v for k, v in self.task_window_steps.items() if v < 0}
        if bad:
            raise ValueError(f"task_window_steps must be >= 0, got {bad}")
        return self


@dataclass
class SampleBatch:
    """Rows of one micro-batch and where each came from."""

    batch: TokenBatch  # (B, L), right-padded to L
    tasks: list[str]  # task (or 'text') of each row
    domains: list[str]  # family of each row
    prompt_tokens: np.ndarray  # (B,) int: prompt tokens of the row, over all its windows


@dataclass(frozen=True)
class SamplePlan:
    """Every random choice behind one row (what :meth:`SequenceSampler.describe` returns)."""

    task: str
    family: str
    episode: int  # episode_index in the data (document number for text; row key for vl)
    start: int  # first token of the window within the episode / document
    length: int  # tokens of the window
    prompt_kind: str = "none"  # 'none' | 'end' | 'uniform'
    prompt_episode: int | None = None  # episode_index the prompt comes from
    prompt_start: int = 0
    prompt_length: int = 0


class SequenceSampler:
    """Deterministic training rows of one split: ``sample(step, index)`` depends on nothing else.

    ``text_tokenizer`` (not part of the config) defaults to the project's SentencePiece model.
    """

    def __init__(self, config: DataConfig, split: str = "train", text_tokenizer=None) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.config = config.validate()
        self.split = split
        data_dir = config.data_dir
        self.held_out: list[str] = []  # held-out tasks left out of the default mix
        if config.tasks:
            names = list(config.tasks)
        elif Path(data_dir).is_dir() or not config.text_files:
            if not Path(data_dir).is_dir():
                raise no_folder(data_dir)
            names = list_complete_tasks(data_dir)
            self.held_out = [n for n in names if n in HELD_OUT_TASKS]
            names = [n for n in names if n not in HELD_OUT_TASKS]
        else:
            names = []  # text only
        if not names and not config.text_files:
            only = f" (only held-out tasks: {', '.join(self.held_out)}; name them in tasks)"
            raise NoDataError(
                f"no collected tasks in {data_dir}{only if self.held_out else ''}; {MAKE_DATA_HINT}"
            )
        language = [n for n in names if is_language_task(n)]  # vl.* and text.* (gato/vl/tasks.py)
        if len(names) > len(language) and not Path(data_dir).is_dir():
            raise no_folder(data_dir)
        names = [n if n in language else resolve_task(n, data_dir) for n in names]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks are listed twice: {names}")
        families = {
            n: language_family(n) if n in language else read_metadata(n, data_dir)["family"]
            for n in names
        }
        if config.text_files:
            families[TEXT] = TEXT
        weights = resolve_weights(families, config.task_weights)

        # Tasks with text observations load the default tokenizer themselves when none is given.
        encoder = MemoEncoder(text_tokenizer) if text_tokenizer is not None else None
        self.tasks: list[str] = []
        self.sources: list[TaskEpisodes | Documents | PairSource] = []
        for name in names + ([TEXT] if config.text_files else []):
            if weights[name] == 0:
                continue  # excluded: not even loaded
            if name == TEXT:
                if text_tokenizer is None:
                    from gato.text import get_text_tokenizer

                    text_tokenizer = get_text_tokenizer()
                texts = read_documents(config.text_files)
                source = Documents(texts, text_tokenizer, split, config.val_episodes)
            elif name in language:
                source = load_language_source(
                    name, data_dir, split, config.val_episodes, text_tokenizer
                )
            else:
                source = load_task(name, data_dir, split, config.val_episodes, encoder)
            if len(source) == 0:
                if split == "train":
                    raise ValueError(f"task {name!r} has no training episodes in {data_dir}")
                continue  # too few episodes to hold any out: no validation data for this task
            self.tasks.append(name)
            self.sources.append(source)
        if not self.tasks:
            raise ValueError(
                f"no {split} data: every task has weight 0 or (for 'val') fewer than 2 episodes"
            )
        self.families = [families[t] for t in self.tasks]
        self._source_of = dict(zip(self.tasks, self.sources, strict=True))
        w = np.array([weights[t] for t in self.tasks], np.float64)
        self.weights: np.ndarray = w / w.sum()
        self._split_id = SPLITS.index(split)
        # Packed windows: window steps of each task's longest timestep (its own training data's,
        # so train and val windows of a task are the same length; checkpoints record them).
        self.window_steps: dict[str, int] = {}
        self.window_tokens: dict[str, int] = {}
        for name, source, family in zip(self.tasks, self.sources, self.families, strict=True):
            by = config.task_window_steps
            steps = by.get(name, by.get(family, config.window_steps))
            if steps and isinstance(source, TaskEpisodes):
                self.window_steps[name] = steps
                self.window_tokens[name] = steps * source.longest_timestep()
        unknown = set(config.task_window_steps) - set(self.tasks) - set(self.families)
        if unknown:
            raise ValueError(
                f"task_window_steps names {sorted(unknown)}, which are neither tasks nor "
                f"families of this mix ({', '.join(self.tasks)})"
            )

    # ------------------------------------------------------------------------------ sampling

    def _rng(self, step: int, index: int) -> np.random.Generator:
        if step < 0 or index < 0:
            raise ValueError(f"step and index must be >= 0, got {step}, {index}")
        seq = np.random.SeedSequence([self.config.seed, self._split_id, int(step), int(index)])
        return np.random.default_rng(seq)

    def describe(self, step: int, index: int) -> SamplePlan:
        """The choices behind row `index` of `step`: task, episode, window and prompt (the
        first window of a packed row: see :meth:`describe_row`)."""
        return self.describe_row(step, index)[0]

    def describe_row(self, step: int, index: int) -> list[SamplePlan]:
        """The windows of row `index` of `step`, in order (one unless the row is packed)."""
        rng = self._rng(step, index)
        t = int(rng.choice(len(self.tasks), p=self.weights))
        window = self.window_tokens.get(self.tasks[t])
        if window is None:
            return [self._plan(rng, t, self.config.seq_len)]
        plans, used, frac = [], 0, self.config.max_prompt_frac
        while used < self.config.seq_len:
            room = self.config.seq_len - used
            # The last segment is cut to fit, its prompt and window in the same proportion.
            budget = min(int(frac * window), int(frac * room / (1 + frac)))
            plans.append(self._plan(rng, t, room, budget, self.window_steps[self.tasks[t]]))
            used += plans[-1].length + plans[-1].prompt_length
        return plans

    def _plan(
        self,
        rng: np.random.Generator,
        t: int,
        seq_len: int,
        budget: int | None = None,
        steps: int = 0,
    ) -> SamplePlan:
        """One window of at most `seq_len` tokens of task `t`, with its prompt if drawn (of at
        most `budget` tokens, default max_prompt_frac * seq_len). `steps` > 0: the window is
        that many whole timesteps from a uniformly drawn timestep start (packed rows)."""
        source = self.sources[t]
        if isinstance(source, Documents):
            doc = int(rng.choice(len(source), p=source.probabilities))
            start, length = token_window(rng, source.num_tokens(doc), seq_len)
            return SamplePlan(self.tasks[t], TEXT, source.indices[doc], start, length)
        if isinstance(source, PairSource):  # five (image, text) pairs, randomly cropped to L
            key = int(rng.integers(2**62))  # seeds the row's choice of examples
            start, length = token_window(rng, source.num_tokens(key), seq_len)
            return SamplePlan(self.tasks[t], source.family, key, start, length)
        ep = int(rng.integers(len(source)))
        if budget is None:
            budget = int(self.config.max_prompt_frac * seq_len)
        prompt = {}
        if len(source) >= 2 and budget > 0 and rng.random() < self.config.prompt_prob:
            other = int(rng.integers(len(source) - 1))
            other += other >= ep  # uniform among the other episodes, never `ep` itself
            kind = "end" if rng.random() < self.config.prompt_end_prob else "uniform"
            p_start, p_stop = prompt_span(rng, source.offsets[other], budget, kind)
            prompt = dict(
                prompt_kind=kind,
                prompt_episode=source.indices[other],
                prompt_start=p_start,
                prompt_length=p_stop - p_start,
            )
        room = seq_len - prompt.get("prompt_length", 0)
        if steps:
            start, length = steps_window(rng, source.offsets[ep], steps, room)
        else:
            start, length = token_window(rng, source.num_tokens(ep), room)
        return SamplePlan(
            self.tasks[t], self.families[t], source.indices[ep], start, length, **prompt
        )

    def sequence(self, plan: SamplePlan) -> TokenSequence:
        """The tokens a plan describes: [prompt (no targets)] + window."""
        source = self._source_of[plan.task]
        if isinstance(source, PairSource):
            return source.tokens(plan.episode, plan.start, plan.start + plan.length)
        window = source.tokens(source.position[plan.episode], plan.start, plan.start + plan.length)
        if not plan.prompt_length:
            return window
        p = source.position[plan.prompt_episode]
        prompt = source.tokens(p, plan.prompt_start, plan.prompt_start + plan.prompt_length)
        return concatenate([prompt.without_targets(), window])

    def sample(self, step: int, index: int) -> tuple[TokenSequence, str, int]:
        """Row `index` of `step`: (sequence of <= L tokens, task, prompt tokens), its windows
        one after another."""
        plans = self.describe_row(step, index)
        seq = concatenate([self.sequence(p) for p in plans])
        return seq, plans[0].task, sum(p.prompt_length for p in plans)

    def rows(self, step: int, indices: Sequence[int]) -> SampleBatch:
        """Rows `indices` of `step`, collated and right-padded to L."""
        rows = [self.describe_row(step, i) for i in indices]
        seqs, segments = [], []
        for plans in rows:
            windows = [self.sequence(p) for p in plans]
            seqs.append(concatenate(windows))
            sizes = [len(w) for w in windows]
            segments.append(np.repeat(np.arange(len(windows), dtype=np.int32), sizes))
        return SampleBatch(
            batch=collate(seqs, self.config.seq_len, segments),
            tasks=[plans[0].task for plans in rows],
            domains=[plans[0].family for plans in rows],
            prompt_tokens=np.array([sum(p.prompt_length for p in plans) for plans in rows]),
        )

    # ------------------------------------------------------------------------------- resume

    def state_dict(self) -> dict:
        """JSON-able: the config and what the data holds, to check that a resume matches."""
        config = asdict(self.config)
        config["tasks"], config["text_files"] = list(config["tasks"]), list(config["text_files"])
        return {
            "config": config,
            "split": self.split,
            "tasks": list(self.tasks),
            "weights": [float(w) for w in self.weights],
            "episodes": {
                t: s.state() if isinstance(s, PairSource) else list(s.position)
                for t, s in self._source_of.items()
            },
            "tokens": {
                t: int(sum(s.num_tokens(i) for i in range(len(s))))
                for t, s in self._source_of.items()
                if not isinstance(s, PairSource)  # rows are drawn, not stored: no total
            },
            "window_tokens": dict(self.window_tokens),
        }

    def load_state_dict(self, state: dict) -> None:
        """Check that `state` (from :meth:`state_dict`) describes the same data and sampling.

        The sampler has no progress to restore (rows are a function of the step), so this only
        refuses to resume on other data. ``data_dir`` may differ (the data may have moved).
        """
        mine = self.state_dict()
        mine["config"].pop("data_dir")
        theirs = {"window_tokens": {}, **state}  # a checkpoint from before packing: none
        defaults = {"window_steps": 0, "task_window_steps": {}}  # options added since then
        theirs["config"] = {
            k: v for k, v in {**defaults, **state.get("config", {})}.items() if k != "data_dir"
        }
        diffs = [
            f"{key}: checkpoint {theirs.get(key)!r} != now {mine[key]!r}"
            for key in mine
            if _jsonish(theirs.get(key)) != _jsonish(mine[key])
        ]
        if diffs:
            raise ValueError(
                "the data does not match the checkpoint's, so resuming would not replay the same "
                "sequences:\n  " + "\n  ".join(d[:500] for d in diffs)
            )


def _jsonish(value):
    """Tuples as lists and floats rounded, so a state survives a JSON round trip unchanged."""
    if isinstance(value, dict):
        return {str(k): _jsonish(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonish(v) for v in value]
    if isinstance(value, float):
        return round(value, 12)
    return value
