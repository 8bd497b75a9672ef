"""Key/value cache for incremental decoding: a Transformer-XL style sliding memory, batched.

The caller (a policy) owns the cache and passes it to :meth:`gato.model.Gato.forward_cached`; the
model keeps no rollout state. Keys are stored already rotated by their absolute position (the
number of tokens fed to that row since its episode began), so a key never needs re-rotating when
the window slides: rotary attention depends only on the query-key offset.

Semantics, exactly, per row: a query at absolute position p attends, in every layer, to that
layer's keys at positions (p - window, p]. Keys of deeper layers were computed when their own
token was fed, from their own window, so the memory reaches further back than `window` tokens
(Transformer-XL). The equivalent full computation is ``model(inputs, attn_window=window)`` over
the row's whole stream (a banded causal mask); while fewer than `window` tokens have been fed it
is plain causal attention, i.e. the ordinary training forward.

Rows are independent episodes. Each row has its own length (valid slots) and absolute position,
so rows can start at different times (a finished rollout is reset while the others go on) and a
chunk can hold a different number of real tokens per row (prompts and observations of different
lengths): a chunk is right-padded, and `lengths` says how many of its tokens are real in each
row. Padding is never written into the cache and never attended to, so a row's result does not
depend on the other rows (up to float rounding of the batched kernels). A row's slots are
contiguous, slot s holding absolute position `positions[r] - lengths[r] + s`.

Storage is a linear buffer of `capacity` (default 2 * window) slots per layer and row: new keys are
written at the row's end and, when a chunk does not fit, the row's last window - 1 keys are moved
to its front (one copy every ~window tokens instead of a concatenation every token).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class KVCache:
    """Per-layer key/value buffers (B, H, capacity, D) plus each row's length and position."""

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
        if window < 1 or batch_size < 0:
            raise ValueError(f"need window >= 1 and batch_size >= 0, got {window}, {batch_size}")
        self.window = window
        capacity = capacity or 2 * window
        shape = (batch_size, n_head, capacity, d_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.lengths = [0] * batch_size  # valid slots per row
        self.positions = [0] * batch_size  # absolute position of the next token fed, per row
        self._pending: tuple | None = None  # the chunk being fed (between prepare and advance)
        self.causal = False  # the chunk being fed sees exactly itself, causally (a first chunk)

    @classmethod
    def for_model(cls, model, batch_size: int, capacity: int | None = None, window=None):
        """An empty cache matching `model`'s config, device and dtype (window: block_size)."""
        cfg = model.config
        w = model.embed.wte.weight
        return cls(
            cfg.n_layer,
            batch_size,
            cfg.n_head,
            cfg.d_head,
            window or cfg.block_size,
            capacity,
            w.device,
            w.dtype,
        )

    @property
    def batch_size(self) -> int:
        return len(self.lengths)

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]

    @property
    def window_starts(self) -> list[int]:
        """Per row, the absolute position of the oldest key its next query will see."""
        return [max(0, p - (self.window - 1)) for p in self.positions]

    # --- rows ---

    def reset(self, rows: Sequence[int] | None = None) -> None:
        """Forget the given rows (default: all), e.g. a new episode; the buffers are reused."""
        for r in range(self.batch_size) if rows is None else rows:
            self.lengths[r] = self.positions[r] = 0

    def truncate(self, rows: Sequence[int], length: int) -> None:
        """Keep only the first `length` slots of these rows, forgetting the tokens after them
        (window memory falls back to a row's prompt, then feeds its new window)."""
        for r in rows:
            if not 0 <= length <= self.lengths[r]:
                raise ValueError(f"row {r} holds {self.lengths[r]} slots, cannot keep {length}")
            self.positions[r] -= self.lengths[r] - length
            self.lengths[r] = length

    # --- feeding a chunk: prepare, update per layer, advance ---

    def prepare(
        self, chunk: int, lengths: Sequence[int] | None = None, rows: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Make room for a chunk of `chunk` tokens per row (`lengths[i]` of them real in row
        `rows[i]`; default: all rows, all real). Returns the rotary positions (b, c) of the
        chunk's tokens and the boolean attention mask to use with them: None when every key is
        visible to every query, (c, S) when all rows share one layout, else (b, 1, c, S)."""
        rows = list(range(self.batch_size)) if rows is None else [int(r) for r in rows]
        n = [chunk] * len(rows) if lengths is None else [int(x) for x in lengths]
        if chunk < 1 or len(n) != len(rows) or not rows:
            raise ValueError(f"a chunk needs >= 1 token and one length per row, got {chunk}, {n}")
        bad = [x for x in n if not 1 <= x <= chunk]
        if bad:
            raise ValueError(f"row lengths must be in [1, {chunk}], got {bad}")
        slides: dict[tuple[int, int], list[int]] = {}  # (length, keep) -> rows, copied at once
        for r, k in zip(rows, n, strict=True):
            if self.lengths[r] + k > self.capacity:
                keep = min(self.lengths[r], self.window - 1)  # what its first query still sees
                if keep + k > self.capacity:  # a chunk bigger than the spare room: grow
                    self._reallocate(keep + k)
                slides.setdefault((self.lengths[r], keep), []).append(r)
        for (length, keep), group in slides.items():
            self._slide(group, length, keep)
        starts = [self.lengths[r] for r in rows]
        lo = min(max(0, s - (self.window - 1)) for s in starts)  # first slot anyone sees
        end = max(s + k for s, k in zip(starts, n, strict=True))
        all_rows = rows == list(range(self.batch_size))
        uniform = len(set(starts)) == 1 and all(k == chunk for k in n)
        self._pending = (rows, n, starts, lo, end, all_rows, uniform)
        # Rows that start empty and feed a chunk no longer than the window: plain causal.
        self.causal = uniform and starts[0] == 0 and chunk <= self.window

        device = self.k[0].device
        i = torch.arange(chunk, device=device)
        base = torch.tensor([self.positions[r] for r in rows], device=device)
        q_pos = base[:, None] + i[None, :]  # (b, c)
        if uniform:
            if chunk == 1:  # one query per row, and it sees every visible key
                return q_pos, None
            offset = (starts[0] + i)[:, None] - torch.arange(lo, end, device=device)[None, :]
            return q_pos, (offset >= 0) & (offset < self.window)  # (c, S)
        q_slot = torch.tensor(starts, device=device)[:, None] + i[None, :]  # (b, c)
        offset = q_slot[:, :, None] - torch.arange(lo, end, device=device)[None, None, :]
        mask = (offset >= 0) & (offset < self.window)  # (b, c, S); slot offset = position offset
        # Padding queries see everything (finite softmax, no NaN); their outputs are discarded.
        padding = i[None, :] >= torch.tensor(n, device=device)[:, None]  # (b, c)
        return q_pos, (mask | padding[:, :, None])[:, None]  # (b, 1, c, S)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store this chunk's (b, H, c, D) keys/values for `layer` (real tokens only); return the
        visible keys and values (b, H, S, D)."""
        rows, n, starts, lo, end, all_rows, uniform = self._pending
        kb, vb = self.k[layer], self.v[layer]
        c = k.shape[2]
        if uniform:
            s = starts[0]
            if all_rows:
                kb[:, :, s : s + c] = k  # casts to the buffer's dtype
                vb[:, :, s : s + c] = v
            else:
                index = torch.as_tensor(rows, device=kb.device)
                kb[index, :, s : s + c] = k.to(kb.dtype)
                vb[index, :, s : s + c] = v.to(vb.dtype)
        else:
            b_idx, i_idx = self._real_tokens(n, kb.device)
            row_idx = torch.as_tensor(rows, device=kb.device)[b_idx]
            slot_idx = torch.as_tensor(starts, device=kb.device)[b_idx] + i_idx
            kb[row_idx, :, slot_idx] = k[b_idx, :, i_idx].to(kb.dtype)  # (M, H, D)
            vb[row_idx, :, slot_idx] = v[b_idx, :, i_idx].to(vb.dtype)
        if all_rows:
            return kb[:, :, lo:end], vb[:, :, lo:end]
        index = torch.as_tensor(rows, device=kb.device)
        return kb[index, :, lo:end], vb[index, :, lo:end]

    def advance(self) -> None:
        """Commit the chunk once every layer has stored it."""
        rows, n, *_ = self._pending
        for r, k in zip(rows, n, strict=True):
            self.lengths[r] += k
            self.positions[r] += k
        self._pending = None
        self.causal = False

    # --- storage ---

    @staticmethod
    def _real_tokens(n: list[int], device) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch index, chunk index) of every real token of a right-padded chunk."""
        b_idx = torch.repeat_interleave(torch.arange(len(n)), torch.tensor(n))
        starts = torch.cumsum(torch.tensor([0, *n[:-1]]), 0)
        i_idx = torch.arange(int(sum(n))) - torch.repeat_interleave(starts, torch.tensor(n))
        return b_idx.to(device), i_idx.to(device)

    def _slide(self, rows: list[int], length: int, keep: int) -> None:
        """Move the last `keep` of `length` slots of these rows to their front."""
        index = torch.as_tensor(rows, device=self.k[0].device)
        for buf in self.k + self.v:
            buf[index, :, :keep] = buf[index, :, length - keep : length]  # gathered: a copy
        for r in rows:
            self.lengths[r] = keep

    def _reallocate(self, capacity: int) -> None:
        for buffers in (self.k, self.v):
            for i, buf in enumerate(buffers):
                new = buf.new_zeros((*buf.shape[:2], capacity, buf.shape[3]))
                keep = min(buf.shape[2], capacity)
                new[:, :, :keep] = buf[:, :, :keep]
                buffers[i] = new
