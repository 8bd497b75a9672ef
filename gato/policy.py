"""Acting with a Gato model (spec section 10): prompt, observe, sample one action token at a time.

    policy = GatoPolicy(model, get_task("cartpole.balance"), greedy=True)
    policy.reset(prompt=demo_episode)          # a successful demonstration, context only
    action = policy.act(observation)           # float32 array or int, as env.step takes it

    batch = GatoPolicy(model, info, num_envs=8)        # one row per environment
    batch.start(3, prompt=demo, seed=2_000_003)        # row 3 begins an episode
    actions = batch.act_batch({0: obs0, ..., 7: obs7})  # every active row, one forward per token
    batch.stop(3)                                      # row 3 leaves the batch

The model stays a stateless nn.Module; everything a rollout accumulates (the token stream, the
KV cache, the timestep counter, the sampling RNG) lives here, per row. Rows are independent: each
has its own prompt, timestep, sampling generator (seeded by its episode) and cache row, so a
row's actions do not depend on how many other rows act beside it or when they started.

Token layout matches training exactly (gato/serialize.py): each observation is tokenized as
`[obs..., '|']` with local positions from 0, and every sampled action token is fed back as an
ACTION token with local position len(obs) + i. Each action token is restricted to the tokens valid
for its dimension (`action_token_bounds`): logits outside [lo, hi) never win. The output layer
scores only the task's action ids (`vocab`: 1,024 continuous bins, or the discrete values), not
all 33k rows of the tied table.

Batching. The first forward of a step feeds, per row, the previous step's last action token and
the new observation (plus the prompt on a row's first step); rows of different lengths are
right-padded and masked (gato/kv_cache.py), never truncated. Rows that are feeding a prompt go
in their own forward, so one long prompt does not pad every other row to its length. Then each
further action token is one forward of one token for all rows.

Memory (`memory="sliding"`, the default). The cached path feeds tokens through a
:class:`gato.kv_cache.KVCache` whose window is `context_tokens`: a Transformer-XL style sliding
memory (each layer's query sees that layer's last `context_tokens` keys, and deeper keys carry
older context). The uncached path recomputes
the exact same function from scratch, row by row: a banded-causal forward
(`attn_window=context_tokens`) over the last `n_layer * (context_tokens - 1) + 1` tokens, which is
the whole receptive field of that memory. So cached and uncached acting agree (up to float
rounding) even after the window has slid.

Memory `memory="window"`: every forward reads the row's prompt and then the longest run of its
latest tokens that starts at a timestep and holds at most `context_tokens` tokens (plain causal
attention): exactly what a packed training window of that many tokens of whole timesteps reads
(gato/data.py's window_steps). [decision] A model trained on short windows never saw a key that
had attended beyond its window, and one trained on windows that start at a timestep never saw
the end of the timestep before; the sliding memory's deeper keys carry older context, so this
mode is the rollout that matches that training. The cached path computes it incrementally: a
row's KV cache holds its prompt (fed once per episode) and then its window; new tokens extend
the window while its first timestep stays, and when that timestep leaves, the row falls back to
its prompt (:meth:`KVCache.truncate`) and feeds its new window, since every later key changes.
The uncached path reads prompt and window from scratch at every forward: the reference.

Image patches are encoded once per policy (gato/patch_cache.py): frames repeat most patches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gato.inputs import GatoInputs
from gato.kv_cache import KVCache
from gato.patch_cache import PatchEmbeddingCache
from gato.prompts import prompt_sequence
from gato.rollout import MEMORIES
from gato.sampling import recompute_last_logits, sample_tokens
from gato.sequence import TokenSequence, concatenate, empty_sequence
from gato.serialize import action_sequence, decode_action, tokenize_timestep
from gato.specs import DiscreteSpec, action_token_bounds


@dataclass
class RowState:
    """What one row (one environment's episode) has accumulated since it started."""

    generator: torch.Generator
    timestep: int = 0
    pending: list[TokenSequence] = field(default_factory=list)  # fed with the next observation
    stream: TokenSequence = field(default_factory=empty_sequence)  # uncached paths' context
    prompt: TokenSequence = field(default_factory=empty_sequence)  # window memory's prompt
    fed: int = 0
    prompt_length: int = 0
    prefill: bool = False  # the prompt is still pending: this row feeds it in its own forward
    prompt_cached: bool = False  # window memory: the cache row holds the prompt
    last_action_tokens: np.ndarray | None = None
    last_logits: torch.Tensor | None = None  # (A, V): each action token's logits over `vocab`

    @property
    def tokens_fed(self) -> int:
        """Tokens in the stream since the row started (prompt included), pending ones too."""
        return self.fed + sum(len(s) for s in self.pending)


class GatoPolicy:
    """A Gato model acting in `num_envs` environments of one task, one row each."""

    def __init__(
        self,
        model: torch.nn.Module,
        task_info,
        context_tokens: int | None = None,
        prompt_tokens: int | None = None,
        greedy: bool = False,
        temperature: float = 1.0,
        use_cache: bool = True,
        seed: int | None = None,
        device: str | torch.device = "cpu",
        text_tokenizer=None,
        num_envs: int = 1,
        memory: str = "sliding",
    ):
        if memory not in MEMORIES:
            raise ValueError(f"memory must be one of {MEMORIES}, got {memory!r}")
        self.memory = memory
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.task_info = task_info
        self.obs_spec = task_info.obs_spec
        self.action_spec = task_info.action_spec
        self.context_tokens = int(context_tokens or model.config.block_size)
        self.prompt_tokens = int(self.context_tokens if prompt_tokens is None else prompt_tokens)
        if self.context_tokens < 2:
            raise ValueError(f"context_tokens must be at least 2, got {self.context_tokens}")
        if self.prompt_tokens < 0:
            raise ValueError(f"prompt_tokens must be >= 0, got {self.prompt_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.num_envs = num_envs
        self.greedy = greedy
        self.temperature = temperature
        self.use_cache = use_cache
        self.text_tokenizer = text_tokenizer
        self.seed = seed if seed is not None else int(torch.seed() % 2**62)
        lo, hi = action_token_bounds(self.action_spec)
        self._bounds = list(zip(lo.tolist(), hi.tolist(), strict=True))
        self.vocab = (int(lo.min()), int(hi.max()))  # every action token's ids, and only those
        weight = model.embed.wte.weight
        self.dtype = weight.dtype
        self._cache = None
        if use_cache:  # window memory: the prompt and the whole window are always visible
            window = self.context_tokens + (self.prompt_tokens if memory == "window" else 0)
            # Row i of the cache is environment i's, for the policy's whole life: an episode
            # that starts resets its row, a retired environment's row is simply not fed
            # (no buffer is copied as rows come and go).
            self._cache = KVCache.for_model(model, num_envs, window=window)
        self._patches = PatchEmbeddingCache() if use_cache else None
        self._rows: dict[int, RowState] = {}
        self._order: list[int] = []  # active rows, ascending
        self.reset()

    # --- rollout state ---

    @property
    def active(self) -> list[int]:
        """The rows that are in an episode, ascending."""
        return list(self._order)

    def row(self, index: int) -> RowState:
        return self._rows[index]

    def start(self, index: int, prompt=None, seed: int | None = None) -> None:
        """Row `index` begins an episode: it forgets its stream and, given a demonstration,
        feeds its first `prompt_tokens` tokens as context. `seed` reseeds the row's sampling RNG
        (so an episode's actions depend only on its own seed); without one, a new row draws
        from the policy's seed + index and a restarted row continues its generator."""
        if not 0 <= index < self.num_envs:
            raise ValueError(f"row {index} is outside [0, {self.num_envs})")
        old = self._rows.get(index)
        if old is not None and seed is None:
            generator = old.generator
        else:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(seed if seed is not None else self.seed + index)
        row = RowState(generator)
        if prompt is not None and self.prompt_tokens > 0:
            seq = prompt_sequence(prompt, self.task_info, self.prompt_tokens, self.text_tokenizer)
            row.prompt_length = len(seq)
            if self.memory == "window":
                row.prompt = seq  # read before the window, not counted in it
                row.prefill = len(seq) > 0
            elif len(seq):
                row.pending.append(seq)  # fed lazily, in one chunk with the first observation
                row.prefill = True
        self._rows[index] = row
        if index not in self._order:
            self._order = sorted([*self._order, index])
        if self._cache is not None:
            self._cache.reset([index])

    def stop(self, index: int) -> None:
        """Row `index` leaves the batch (its environment has no more episodes to run)."""
        if index not in self._order:
            raise ValueError(f"row {index} is not active (active: {self._order})")
        self._order.remove(index)
        del self._rows[index]

    def reset(self, prompt=None, seed: int | None = None) -> None:
        """Every row begins an episode with this prompt and seed (see :meth:`start`)."""
        for index in range(self.num_envs):
            self.start(index, prompt, seed)

    # Single-environment views (num_envs == 1), as a plain rollout uses them.
    @property
    def timestep(self) -> int:
        return self._only().timestep

    @property
    def last_action_tokens(self) -> np.ndarray | None:
        return self._only().last_action_tokens

    @property
    def prompt_length(self) -> int:
        return self._only().prompt_length

    @property
    def tokens_fed(self) -> int:
        return self._only().tokens_fed

    def _only(self) -> RowState:
        if self.num_envs != 1:
            raise ValueError(f"this policy has {self.num_envs} rows: use row(i)")
        return self._rows[0]

    # --- acting ---

    @torch.inference_mode()
    def act(self, observation: Mapping[str, Any]):
        """The action for this observation (num_envs == 1), in the env's action space: a float32
        array (continuous) or an int (a discrete spec of shape ()); int64 array for discrete
        vectors."""
        self._only()
        return self.act_batch({0: observation})[0]

    @torch.inference_mode()
    def act_batch(self, observations: Mapping[int, Mapping[str, Any]]) -> dict[int, Any]:
        """One action per active row, sampled together: {row: observation} -> {row: action}.
        Every active row must be given (the rows advance in lockstep)."""
        if set(observations) != set(self._order):
            missing = sorted(set(self._order) - set(observations))
            extra = sorted(set(observations) - set(self._order))
            raise ValueError(
                f"act_batch needs every active row: missing {missing}, not active {extra}"
            )
        order = self._order
        obs_seqs = {
            i: tokenize_timestep(
                observations[i],
                None,
                self.obs_spec,
                self.action_spec,
                self._rows[i].timestep,
                self.text_tokenizer,
            )
            for i in order
        }
        prefill = [i for i in order if self._rows[i].prefill]
        rest = [i for i in order if not self._rows[i].prefill]
        logits: dict[int, torch.Tensor] = {}
        for group in (prefill, rest) if prefill and rest else (order,):
            logits.update(self._feed(group, [obs_seqs[i] for i in group]))
        tokens: dict[int, list[int]] = {i: [] for i in order}
        seen: dict[int, list[torch.Tensor]] = {i: [] for i in order}
        generators = [self._rows[i].generator for i in order]
        for k, (lo, hi) in enumerate(self._bounds):
            if k:  # feed back the previous action token as what it is: an ACTION token
                prev = [
                    action_sequence(
                        [tokens[i][-1]], self._rows[i].timestep, len(obs_seqs[i]) + k - 1
                    )
                    for i in order
                ]
                logits = self._feed(order, prev)
            for i in order:
                seen[i].append(logits[i])
            batch = torch.stack([logits[i] for i in order])  # (b, V) over self.vocab
            v0 = self.vocab[0]
            sampled = sample_tokens(
                batch, lo - v0, hi - v0, self.greedy, self.temperature, generators
            )
            for i, t in zip(order, sampled, strict=True):
                tokens[i].append(t + v0)
        actions = {}
        for i in order:
            row = self._rows[i]
            # The last action token is needed only by the next observation: defer it, saving
            # a forward pass per step.
            last_pos = len(obs_seqs[i]) + len(tokens[i]) - 1
            row.pending.append(action_sequence([tokens[i][-1]], row.timestep, last_pos))
            row.timestep += 1
            row.last_action_tokens = np.asarray(tokens[i], np.int64)
            row.last_logits = torch.stack(seen[i])
            action = decode_action(row.last_action_tokens, self.action_spec)
            if isinstance(self.action_spec, DiscreteSpec) and action.shape == ():
                action = int(action)
            actions[i] = action
        return actions

    def _feed(self, indices: list[int], seqs: list[TokenSequence]) -> dict[int, torch.Tensor]:
        """Append each row's pending tokens and its sequence to its stream; return the (V,)
        logits over `vocab` of each row's last position."""
        chunks = []
        for i, seq in zip(indices, seqs, strict=True):
            row = self._rows[i]
            chunk = concatenate([*row.pending, seq]) if row.pending else seq
            row.pending, row.prefill = [], False
            row.fed += len(chunk)
            chunks.append(chunk)
        if self.memory == "window":
            if self._cache is None:
                return self._window_logits(indices, chunks)
            chunks = self._window_feeds(indices, chunks)
        elif self._cache is None:
            return {i: self._recompute(i, c) for i, c in zip(indices, chunks, strict=True)}
        lengths = [len(c) for c in chunks]
        rows = list(indices)  # cache row i is environment i's
        logits = self.model.forward_cached(
            self._inputs(chunks),
            self._cache,
            lengths=None if len(set(lengths)) == 1 else lengths,
            rows=None if rows == list(range(self.num_envs)) else rows,
            vocab=self.vocab,
        )
        return dict(zip(indices, logits, strict=True))

    def _latest_window(self, stream: TokenSequence, chunk: TokenSequence):
        """(window, cut): the longest run of the latest tokens of stream + chunk that starts at
        a timestep and holds at most context_tokens tokens, and where it starts in stream +
        chunk (0: the window only grew)."""
        stream = concatenate([stream, chunk])
        if len(stream) <= self.context_tokens:
            return stream, 0
        cut = len(stream) - self.context_tokens
        starts = stream.timestep_starts()
        starts = starts[starts >= cut]
        # A timestep longer than the window (layout_check refuses those) is cut.
        begin = int(starts[0]) if len(starts) else cut
        return stream.window(begin, len(stream)), begin

    def _window_feeds(self, indices: list[int], chunks: list[TokenSequence]):
        """Window memory on the cache: what each row feeds. A chunk that leaves the window's
        start in place extends it; otherwise the row's cache falls back to its prompt and the
        whole new window is fed (on a row's first feed, after its prompt)."""
        feeds = []
        for i, chunk in zip(indices, chunks, strict=True):
            row = self._rows[i]
            row.stream, cut = self._latest_window(row.stream, chunk)
            if cut == 0 and row.prompt_cached:
                feeds.append(chunk)
                continue
            cache_row = [i]
            if row.prompt_cached:
                self._cache.truncate(cache_row, len(row.prompt))
                feeds.append(row.stream)
            else:
                self._cache.truncate(cache_row, 0)
                feeds.append(concatenate([row.prompt, row.stream]))
                row.prompt_cached = True
        return feeds

    def _window_logits(self, indices: list[int], chunks: list[TokenSequence]):
        """Window memory without a cache: each row's prompt + window from scratch; rows whose
        windows have the same length share one forward (in lockstep that is all of them)."""
        windows = {}
        for i, chunk in zip(indices, chunks, strict=True):
            row = self._rows[i]
            row.stream, _ = self._latest_window(row.stream, chunk)
            windows[i] = concatenate([row.prompt, row.stream])
        logits: dict[int, torch.Tensor] = {}
        for length in sorted({len(w) for w in windows.values()}):
            group = [i for i in indices if len(windows[i]) == length]
            inputs = self._inputs([windows[i] for i in group])
            out, _ = self.model(inputs, last_only=True, vocab=self.vocab)
            logits.update(zip(group, out, strict=True))
        return logits

    def _recompute(self, index: int, chunk: TokenSequence) -> torch.Tensor:
        """The uncached path: one row's receptive field through a banded-causal forward."""
        row = self._rows[index]
        row.stream, logits = recompute_last_logits(
            self.model, row.stream, chunk, self.context_tokens, self._inputs, self.vocab
        )
        return logits

    def _inputs(self, seqs: list[TokenSequence]) -> GatoInputs:
        inputs = GatoInputs.from_sequences(seqs, device=self.device)
        if inputs.patches.dtype != self.dtype:  # a bf16 model reads bf16 pixels
            inputs.patches = inputs.patches.to(self.dtype)
        if self._patches is not None and inputs.patches.shape[0]:
            encoder = self.model.embed.patch_encoder
            inputs.patch_embeddings = self._patches.embed(encoder, inputs.patches)
        return inputs
