"""Sampling text from a Gato model through the same KV cache as acting (gato/policy.py).

    gen = TextGenerator(model, tokenizer, greedy=True)
    gen.feed(generation_prompt(tokenizer, "Q: what colour is the cube? A:", image))
    ids = list(gen.generate(max_new_tokens=16))   # stops at end of text (SentencePiece EOS)
    gen.stop_reason                                # 'end of text', 'max new tokens', ...

The model stays a stateless nn.Module; a generator holds everything one dialogue accumulates:
the KV cache (or, uncached, the token stream), the sampling RNG, the logits of the last token,
the sampled token not yet fed, and where the local positions of the next text token continue.

Layout (gato/serialize.py, spec sections 3 and 12). A text prompt is a document: every token at
local position 0. An image with text is one vision-language pair, `[image patches, text]`, with
local positions counting from 0 at the first patch through the text, as training lays out a pair;
tokens sampled after a pair continue its local positions (a pair can hold at most the model's
`max_local_positions` tokens, and generation stops there, saying so in `stop_reason`).

Memory. As in acting, the cache's window is `context_tokens` (default: the model's block_size):
a Transformer-XL style sliding memory, so a prompt or a dialogue longer than the context is not
cut but seen through that memory (each layer's query sees its last `context_tokens` keys, deeper
keys carrying older context; gato/kv_cache.py). Prompts are fed in chunks of at most the window.
`use_cache=False` recomputes the same function from scratch for every token (a banded-causal
forward over the memory's receptive field, as GatoPolicy's uncached path does): the reference
the cached path is tested against.

Sampling is restricted to text tokens [0, 32000): continuous bins, the separator and the
embedding table's padding can never be drawn. `top_k` keeps the k most likely text tokens (ties
with the k-th are kept); temperature 0 or `greedy` takes the most likely one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from gato.inputs import GatoInputs
from gato.kv_cache import KVCache
from gato.sampling import recompute_last_logits, sample_tokens
from gato.sequence import Kind, TokenSequence, concatenate, empty_sequence
from gato.serialize import document_sequence, tokenize_image_text_pairs
from gato.text import TEXT_VOCAB_SIZE

END_OF_TEXT = "end of text"
MAX_NEW_TOKENS = "max new tokens"
LOCAL_POSITIONS = "local positions"


def eos_id_of(text_tokenizer) -> int | None:
    """The end-of-text id of a text tokenizer (gato.text.TextTokenizer: 2), or None if it has
    none."""
    return getattr(text_tokenizer, "eos_id", None)


def sample_text_token(
    logits: torch.Tensor,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """One text token id in [0, 32000) from (V,) logits: the top_k most likely (None: all),
    then sampled at `temperature` (greedy, or temperature 0: the most likely)."""
    text = logits[:TEXT_VOCAB_SIZE].to(torch.float64)  # (32000,)
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if top_k < text.shape[0]:
            kth = torch.topk(text, top_k).values[-1]
            text = text.masked_fill(text < kth, float("-inf"))
    return sample_tokens(text[None], 0, TEXT_VOCAB_SIZE, greedy, temperature, [generator])[0]


def generation_prompt(text_tokenizer, text: str = "", image: np.ndarray | None = None):
    """The tokens a prompt feeds: a document (text only) or one `[image patches, text]` pair.
    None of them is a loss target (a prompt is context only)."""
    if image is None:
        return document_sequence(text_tokenizer.encode(text)).without_targets()
    return tokenize_image_text_pairs([(image, text)], text_tokenizer).without_targets()


def encode_after_newline(text_tokenizer, text: str) -> np.ndarray | None:
    """The ids of `text` as SentencePiece reads it right after a newline in a document: without
    the dummy-prefix space a separately encoded text starts with (encode("\\n" + text), less
    the ids of "\\n"). None if the tokenizer does not split that way."""
    newline = text_tokenizer.encode("\n")
    ids = text_tokenizer.encode("\n" + text)
    if len(ids) < len(newline) or not np.array_equal(ids[: len(newline)], newline):
        return None
    return ids[len(newline) :]


def text_token(token: int, local_position: int) -> TokenSequence:
    """One sampled text token at a local position, as it is fed back."""
    seq = document_sequence([token]).without_targets()
    seq.local_positions = np.array([local_position], np.int64)
    return seq


class TextGenerator:
    """One text rollout (a caption, an answer, a dialogue): its cache, RNG and pending token."""

    def __init__(
        self,
        model: torch.nn.Module,
        text_tokenizer,
        context_tokens: int | None = None,
        greedy: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
        use_cache: bool = True,
        eos_id: int | None | str = "tokenizer",
    ):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.model = model.eval()
        self.tokenizer = text_tokenizer
        self.context_tokens = int(context_tokens or model.config.block_size)
        if self.context_tokens < 2:
            raise ValueError(f"context_tokens must be at least 2, got {self.context_tokens}")
        self.greedy, self.temperature, self.top_k = greedy, temperature, top_k
        self.seed = seed
        self.use_cache = use_cache
        self.eos_id = eos_id_of(text_tokenizer) if eos_id == "tokenizer" else eos_id
        self.max_local = int(model.config.max_local_positions)
        weight = model.embed.wte.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.reset()

    def reset(self) -> None:
        """Forget everything fed; the RNG restarts from the seed."""
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)
        self.cache = (
            KVCache.for_model(self.model, 1, window=self.context_tokens) if self.use_cache else None
        )
        self.stream = empty_sequence()  # the uncached path's context (its receptive field)
        self.tokens_fed = 0
        self.pending: list[TokenSequence] = []  # sampled, fed with the next forward
        self.logits: torch.Tensor | None = None  # (V,) after the last token fed
        self.next_local = 0  # local position of the next text token
        self.in_pair = False  # the next text token continues an (image, text) pair
        self.stop_reason: str | None = None

    @property
    def context_length(self) -> int:
        """Tokens fed since the reset, the pending sampled token included."""
        return self.tokens_fed + sum(len(s) for s in self.pending)

    # --- feeding ---

    def feed(self, seq: TokenSequence) -> None:
        """Append `seq` (after any pending sampled token) to the context. A sequence holding an
        image, or whose local positions count up (a pair), makes the tokens sampled after it
        continue its local positions; a document's are 0."""
        if len(seq) == 0:
            return
        if int(seq.local_positions.max()) >= self.max_local:
            raise ValueError(
                f"an image and its text hold {int(seq.local_positions.max()) + 1} tokens but the "
                f"model has {self.max_local} local positions (max_local_positions): use a "
                "shorter prompt or a smaller image"
            )
        self.in_pair = bool((seq.kinds == Kind.IMAGE).any() or seq.local_positions[-1] > 0)
        self.next_local = int(seq.local_positions[-1]) + 1 if self.in_pair else 0
        self._forward(concatenate([*self.pending, seq]))
        self.pending = []

    def feed_text(self, text: str, after_newline: bool = False) -> None:
        """Append text as document tokens (local position 0), e.g. a dialogue turn; with
        `after_newline`, tokenized as it reads after a newline inside a document (no leading
        space: see :func:`encode_after_newline`)."""
        ids = encode_after_newline(self.tokenizer, text) if after_newline else None
        if ids is None:
            ids = self.tokenizer.encode(text)
        self.feed(document_sequence(ids).without_targets())

    @torch.inference_mode()
    def _forward(self, chunk: TokenSequence) -> None:
        """Feed tokens in pieces of at most the window; keep the last token's logits."""
        for start in range(0, len(chunk), self.context_tokens):
            piece = chunk.window(start, min(len(chunk), start + self.context_tokens))
            self.tokens_fed += len(piece)
            if self.cache is not None:
                inputs = self._inputs([piece])
                self.logits = self.model.forward_cached(inputs, self.cache)[0]  # (V,)
            else:
                self.logits = self._recompute(piece)

    def _recompute(self, piece: TokenSequence) -> torch.Tensor:
        self.stream, logits = recompute_last_logits(
            self.model, self.stream, piece, self.context_tokens, self._inputs
        )
        return logits

    def _inputs(self, seqs: Sequence[TokenSequence]) -> GatoInputs:
        inputs = GatoInputs.from_sequences(list(seqs), device=self.device)
        if inputs.patches.dtype != self.dtype:  # a bf16 model reads bf16 pixels
            inputs.patches = inputs.patches.to(self.dtype)
        return inputs

    # --- sampling ---

    def next_token(self) -> int | None:
        """Feed the pending token, then sample the next text token and make it pending. None
        (and `stop_reason` set) at end of text or when a pair runs out of local positions; the
        end-of-text token is not fed."""
        if self.pending:
            self._forward(concatenate(self.pending))
            self.pending = []
        if self.logits is None:
            raise ValueError("nothing to continue: feed a prompt first")
        if self.in_pair and self.next_local >= self.max_local:
            self.stop_reason = LOCAL_POSITIONS
            return None
        token = sample_text_token(
            self.logits, self.greedy, self.temperature, self.top_k, self.generator
        )
        if token == self.eos_id:
            self.stop_reason = END_OF_TEXT
            return None
        self.pending.append(text_token(token, self.next_local))
        if self.in_pair:
            self.next_local += 1
        return token

    def generate(self, max_new_tokens: int) -> Iterator[int]:
        """Yield up to `max_new_tokens` sampled text tokens, each one as soon as it is drawn.
        `stop_reason` says why it ended (None if the caller stopped early). The last token
        yielded stays pending: it is fed with whatever comes next."""
        self.stop_reason = None
        for _ in range(max_new_tokens):
            token = self.next_token()
            if token is None:
                return
            yield token
        self.stop_reason = MAX_NEW_TOKENS


class TextStream:
    """Decoded increments of a growing list of text ids, for printing as tokens come.

    SentencePiece decodes a piece's leading space only after other text, and byte-fallback
    pieces of one character only once it is complete: each increment is the decoded text of the
    last few context ids (`context_ids`) plus the new ids, minus what was already returned, and
    nothing while the text ends in an incomplete character."""

    def __init__(self, text_tokenizer, context_ids: Sequence[int] = (), anchor: int = 8):
        self.tokenizer = text_tokenizer
        self.anchor = [int(i) for i in list(context_ids)[-anchor:]]
        self.prefix = text_tokenizer.decode(self.anchor)
        self.ids: list[int] = []
        self.text = ""  # returned so far

    def push(self, token: int) -> str:
        self.ids.append(int(token))
        full = self.tokenizer.decode(self.anchor + self.ids)
        if full.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for its next byte
            return ""
        new = full[len(self.prefix) :] if full.startswith(self.prefix) else full
        if not new.startswith(self.text):  # cannot happen with SentencePiece; stay consistent
            return ""
        increment, self.text = new[len(self.text) :], new
        return increment

    def flush(self) -> str:
        """The rest (an incomplete last character decodes as U+FFFD)."""
        full = self.tokenizer.decode(self.anchor + self.ids)
        new = full[len(self.prefix) :] if full.startswith(self.prefix) else full
        rest = new[len(self.text) :] if new.startswith(self.text) else ""
        self.text += rest
        return rest
