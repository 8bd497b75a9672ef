"""Key/value cache for incremental decoding: a Transformer-XL style sliding memory.

The caller (a policy) owns the cache and passes it to :meth:`gato.model.Gato.forward_cached`; the
model keeps no rollout state. Keys are stored already rotated by their absolute position (the
number of tokens fed since the episode began), so a key never needs re-rotating when the window
slides: rotary attention depends only on the query-key offset.

Semantics, exactly: a query at absolute position p attends, in every layer, to that layer's keys
at positions (p - window, p]. Keys of deeper layers were computed when their own token was fed,
from their own window, so the memory reaches further back than `window` tokens (Transformer-XL).
The equivalent full computation is ``model(inputs, attn_window=window)`` over the whole stream
(a banded causal mask); while fewer than `window` tokens have been fed it is plain causal
attention, i.e. the ordinary training forward.

Storage is a linear buffer of `capacity` (default 2 * window) slots per layer: new keys are
written at the end and, when a chunk does not fit, the last window - 1 keys are moved to the front
(one copy every ~window tokens instead of a concatenation every token).
"""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer key/value buffers (B, H, capacity, D) plus the stream's absolute position."""

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_head: int,
        d_head: int,
        window: int,
        capacity: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        self.window = window
        capacity = capacity or 2 * window
        shape = (batch_size, n_head, capacity, d_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.length = 0  # valid slots in the buffers
        self.pos = 0  # absolute position of the next token fed
        self._lo = 0  # first slot the current chunk's first query can see
        self._chunk = 0  # size of the chunk being fed (between prepare and advance)

    @classmethod
    def for_model(cls, model, batch_size: int, capacity: int | None = None) -> KVCache:
        """An empty cache matching `model`'s config, device and dtype."""
        cfg = model.config
        w = model.embed.wte.weight
        return cls(
            cfg.n_layer,
            batch_size,
            cfg.n_head,
            cfg.d_head,
            cfg.block_size,
            capacity,
            w.device,
            w.dtype,
        )

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]

    @property
    def window_start(self) -> int:
        """Absolute position of the oldest key the next query will see."""
        return max(0, self.pos - (self.window - 1))

    def reset(self) -> None:
        """Forget everything (a new episode); the buffers are reused."""
        self.length = self.pos = self._lo = self._chunk = 0

    def prepare(self, chunk: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Make room for `chunk` new tokens; return their absolute positions (chunk,) and the
        boolean attention mask (chunk, keys) to use with them, or None when all keys are visible
        to every query (single-token decoding)."""
        if chunk < 1:
            raise ValueError("a chunk must hold at least one token")
        keep = min(self.length, self.window - 1)  # what the chunk's first query can still see
        if self.length + chunk > self.capacity:
            if keep + chunk > self.capacity:  # a chunk bigger than the spare room: grow
                self._reallocate(keep + chunk, keep)
            else:  # slide: move the last `keep` slots to the front
                for buf in self.k + self.v:
                    buf[:, :, :keep] = buf[:, :, self.length - keep : self.length].clone()
            self.length = keep
        self._lo = self.length - keep
        self._chunk = chunk
        device = self.k[0].device
        q_pos = torch.arange(self.pos, self.pos + chunk, device=device)  # (c,)
        if chunk == 1:
            return q_pos, None
        k_pos = torch.arange(self.pos - keep, self.pos + chunk, device=device)  # (keep + c,)
        offset = q_pos[:, None] - k_pos[None, :]  # (c, keep + c)
        return q_pos, (offset >= 0) & (offset < self.window)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store this chunk's (B, H, c, D) keys/values for `layer`; return the visible keys and
        values (B, H, keep + c, D)."""
        end = self.length + self._chunk
        self.k[layer][:, :, self.length : end] = k  # casts to the buffer's dtype
        self.v[layer][:, :, self.length : end] = v
        return self.k[layer][:, :, self._lo : end], self.v[layer][:, :, self._lo : end]

    def advance(self) -> None:
        """Commit the chunk once every layer has stored it."""
        self.length += self._chunk
        self.pos += self._chunk
        self._chunk = 0

    def _reallocate(self, capacity: int, keep: int) -> None:
        for buffers in (self.k, self.v):
            for i, buf in enumerate(buffers):
                new = buf.new_zeros((*buf.shape[:2], capacity, buf.shape[3]))
                new[:, :, :keep] = buf[:, :, self.length - keep : self.length]
                buffers[i] = new
