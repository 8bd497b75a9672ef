"""Acting with a Gato model (spec section 10): prompt, observe, sample one action token at a time.

    policy = GatoPolicy(model, get_task("cartpole.balance"), greedy=True)
    policy.reset(prompt=demo_episode)          # a successful demonstration, context only
    action = policy.act(observation)           # float32 array or int, as env.step takes it

The model stays a stateless nn.Module; everything a rollout accumulates (the token stream, the
KV cache, the timestep counter, the sampling RNG) lives here.

Token layout matches training exactly (gato/serialize.py): each observation is tokenized as
`[obs..., '|']` with local positions from 0, and every sampled action token is fed back as an
ACTION token with local position len(obs) + i. Each action token is restricted to the tokens valid
for its dimension (`action_token_bounds`): logits outside [lo, hi) never win.

Memory. The cached path feeds tokens through a :class:`gato.kv_cache.KVCache` whose window is
`context_tokens`: a Transformer-XL style sliding memory (each layer's query sees that layer's
last `context_tokens` keys, and deeper keys carry older context). The uncached path recomputes
the exact same function from scratch: a banded-causal forward (`attn_window=context_tokens`)
over the last `n_layer * (context_tokens - 1) + 1` tokens, which is the whole receptive field of
that memory (each layer reaches context_tokens - 1 tokens further back). So cached and uncached
acting agree (up to float rounding) even after the window has slid; while the stream is at most
`context_tokens` long both are plain causal attention over the whole context, as in training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from gato.inputs import GatoInputs
from gato.kv_cache import KVCache
from gato.sequence import TokenSequence, concatenate, empty_sequence
from gato.serialize import action_sequence, decode_action, tokenize_timestep
from gato.specs import DiscreteSpec, action_token_bounds


def sample_token(
    logits: torch.Tensor,
    lo: int,
    hi: int,
    greedy: bool = False,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> int:
    """One token id in [lo, hi) from a (V,) row of logits.

    Everything outside [lo, hi) is masked to -inf before the softmax / argmax, so an invalid
    token can never be drawn whatever the logits are. temperature <= 0 means greedy.
    """
    if not 0 <= lo < hi <= logits.shape[-1]:
        raise ValueError(f"token range [{lo}, {hi}) is outside a vocabulary of {logits.shape[-1]}")
    masked = torch.full_like(logits, float("-inf"), dtype=torch.float64)
    masked[lo:hi] = logits[lo:hi].to(torch.float64)  # float64: tiny probabilities stay exact
    if greedy or temperature <= 0:
        return int(torch.argmax(masked))
    probs = torch.softmax(masked / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def prompt_sequence(prompt, task_info, prompt_tokens: int, text_tokenizer=None) -> TokenSequence:
    """A demonstration (Episode, TokenSequence or gato.prompts.Prompt) -> its first
    `prompt_tokens` tokens, none of them a loss target (a prompt is context only)."""
    from gato.jat import Episode, episode_to_sequence

    episode = getattr(prompt, "episode", prompt)  # a gato.prompts.Prompt holds an Episode
    if isinstance(episode, Episode):
        # Only the steps the prompt can use are tokenized (a long Atari episode is thousands
        # of frames).
        from gato.prompts import steps_for_tokens, truncate_episode

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


class GatoPolicy:
    """A Gato model acting in one task's environment; one instance per concurrent rollout."""

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
    ):
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
        self.greedy = greedy
        self.temperature = temperature
        self.use_cache = use_cache
        self.text_tokenizer = text_tokenizer
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed if seed is not None else int(torch.seed() % 2**63))
        lo, hi = action_token_bounds(self.action_spec)
        self._bounds = list(zip(lo.tolist(), hi.tolist(), strict=True))
        cfg = model.config
        # The whole receptive field of the sliding memory (see the module docstring).
        self._receptive_field = cfg.n_layer * (self.context_tokens - 1) + 1
        self._cache: KVCache | None = None
        if use_cache:
            w = model.embed.wte.weight
            self._cache = KVCache(
                cfg.n_layer,
                1,
                cfg.n_head,
                cfg.d_head,
                self.context_tokens,
                device=w.device,
                dtype=w.dtype,
            )
        self.reset()

    # --- rollout state ---

    def reset(self, prompt=None, seed: int | None = None) -> None:
        """Start an episode: forget the stream and, given a demonstration, feed its first
        `prompt_tokens` tokens as context. `seed` reseeds the sampling RNG (so an episode's
        actions do not depend on the episodes sampled before it)."""
        if seed is not None:
            self.generator.manual_seed(seed)
        self.timestep = 0
        self.last_action_tokens: np.ndarray | None = None
        self._pending: list[TokenSequence] = []  # fed to the cache with the next observation
        self._stream = empty_sequence()  # uncached path: the receptive field of the memory
        if self._cache is not None:
            self._cache.reset()
        self._fed = 0
        self.prompt_length = 0
        if prompt is not None and self.prompt_tokens > 0:
            seq = prompt_sequence(prompt, self.task_info, self.prompt_tokens, self.text_tokenizer)
            self.prompt_length = len(seq)
            if len(seq):
                self._pending.append(seq)  # fed lazily, in one chunk with the first observation

    @property
    def tokens_fed(self) -> int:
        """Tokens in the stream since reset (prompt included), pending ones included."""
        return self._fed + sum(len(s) for s in self._pending)

    # --- acting ---

    @torch.inference_mode()
    def act(self, observation: Mapping[str, Any]):
        """The action for this observation, in the env's action space: a float32 array
        (continuous) or an int (a discrete spec of shape ()); int64 array for discrete vectors."""
        obs_seq = tokenize_timestep(
            observation, None, self.obs_spec, self.action_spec, self.timestep, self.text_tokenizer
        )
        logits = self._feed(obs_seq)
        tokens = []
        for i, (lo, hi) in enumerate(self._bounds):
            if i:  # feed back the previous action token as what it is: an ACTION token
                prev = action_sequence([tokens[-1]], self.timestep, len(obs_seq) + i - 1)
                logits = self._feed(prev)
            tokens.append(
                sample_token(logits, lo, hi, self.greedy, self.temperature, self.generator)
            )
        # The last action token is needed only by the next observation: defer it, saving a
        # forward pass per step.
        last_pos = len(obs_seq) + len(tokens) - 1
        self._pending.append(action_sequence([tokens[-1]], self.timestep, last_pos))
        self.timestep += 1
        self.last_action_tokens = np.asarray(tokens, np.int64)
        action = decode_action(self.last_action_tokens, self.action_spec)
        if isinstance(self.action_spec, DiscreteSpec) and action.shape == ():
            return int(action)
        return action

    def _feed(self, seq: TokenSequence) -> torch.Tensor:
        """Append pending tokens and `seq` to the stream; return the (V,) logits of its last
        position."""
        chunk = concatenate([*self._pending, seq])
        self._pending = []
        self._fed += len(chunk)
        if self._cache is not None:
            inputs = GatoInputs.from_sequences([chunk], device=self.device)
            return self.model.forward_cached(inputs, self._cache, last_only=True)[0]
        stream = concatenate([self._stream, chunk])
        if len(stream) > self._receptive_field:  # older tokens cannot reach the next logits
            stream = stream.window(len(stream) - self._receptive_field, len(stream))
        self._stream = stream
        inputs = GatoInputs.from_sequences([stream], device=self.device)
        window = self.context_tokens if len(stream) > self.context_tokens else None
        logits, _ = self.model(inputs, last_only=True, attn_window=window)
        return logits[0]
