"""The Gato model on real tokenized episodes: causality, loss masking, patch positions, sizes,
learning, config round trip. Cached decoding is in tests/test_kv_cache.py."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from model_fixtures import debug_model, episode

from gato.config import SIZES, GatoConfig, get_config
from gato.inputs import GatoInputs
from gato.model import Gato
from gato.tokenizer import CONTINUOUS_OFFSET, NUM_BINS, SEPARATOR, VOCAB_SIZE


@pytest.fixture(scope="module")
def batch() -> GatoInputs:
    return GatoInputs.from_sequences([episode(1), episode(2, steps=4, discrete_actions=True)])


def test_shapes_and_targets(batch):
    model = debug_model()
    b, t = batch.shape
    logits, loss = model(batch)
    assert logits.shape == (b, t, VOCAB_SIZE) and loss is None
    last, _ = model(batch, last_only=True)
    torch.testing.assert_close(last, logits[:, -1])
    targets, mask = batch.next_token_targets()
    assert torch.equal(targets[:, :-1], batch.tokens[:, 1:])
    assert torch.equal(mask[:, :-1], batch.loss_mask[:, 1:]) and not mask[:, -1].any()
    logits, loss = model(batch, targets, mask)
    assert logits.shape == (int(mask.sum()), VOCAB_SIZE)
    # an untrained model is near uniform over the vocabulary
    assert abs(loss.item() - np.log(VOCAB_SIZE)) < 1.0


def test_causality(batch):
    """Changing a later token or a later image patch never changes earlier logits."""
    model = debug_model()
    logits, _ = model(batch)
    row = 0
    is_patch = batch.patch_index[row] >= 0
    t_tok = int(torch.nonzero(~is_patch & (batch.tokens[row] > 0))[40])  # a non-patch token
    t_img = int(torch.nonzero(is_patch)[10])  # a later image patch position
    changed = GatoInputs(**vars(batch))
    changed.tokens = batch.tokens.clone()
    changed.tokens[row, t_tok] = (batch.tokens[row, t_tok] + 123) % VOCAB_SIZE
    changed.patches = batch.patches.clone()
    changed.patches[batch.patch_index[row, t_img]] += 0.5
    new, _ = model(changed)
    first = min(t_tok, t_img)
    assert torch.equal(new[row, :first], logits[row, :first])
    assert not torch.allclose(new[row, first:], logits[row, first:])
    assert torch.equal(new[1], logits[1])  # the other row is untouched


def test_patch_positions_not_token_zero(batch):
    """Patch positions hold token id 0, whose embedding must not leak into them."""
    model = debug_model()
    with torch.no_grad():
        base = model.embed(batch)
        model.embed.wte.weight[0] += 1.0
        moved = model.embed(batch)
    is_patch = batch.patch_index >= 0
    assert torch.equal(base[is_patch], moved[is_patch])
    zero_token = (batch.tokens == 0) & ~is_patch  # padding and discrete 0s do move
    assert not torch.equal(base[zero_token], moved[zero_token])


def test_loss_counts_only_targets(batch):
    model = debug_model()
    targets, mask = batch.next_token_targets()
    _, loss = model(batch, targets, mask)
    other = targets.clone()
    other[~mask] = (other[~mask] + 7) % VOCAB_SIZE  # relabel every non-target position
    _, same = model(batch, other, mask)
    assert same.item() == loss.item()
    other = targets.clone()
    i = torch.nonzero(mask)[3]
    other[i[0], i[1]] = (other[i[0], i[1]] + 1) % VOCAB_SIZE
    _, changed = model(batch, other, mask)
    assert changed.item() != loss.item()


def test_target_only_projection_matches_full_logits(batch):
    model = debug_model()
    targets, mask = batch.next_token_targets()
    logits_t, loss = model(batch, targets, mask)
    full, _ = model(batch)
    ref = torch.nn.functional.cross_entropy(full[mask], targets[mask])  # mean over targets
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits_t, full[mask], atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter(batch):
    model = debug_model().train()
    _, loss = model(batch, *batch.next_token_targets())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def test_patch_position_sampling(batch):
    model = debug_model()
    pp = model.embed.patch_positions
    rows, cols = batch.patch_rows, batch.patch_cols
    pp.eval()
    assert torch.equal(pp(rows, cols), pp(rows, cols))
    # 32-pixel images: 2 patches per side, intervals [0, 64) and [64, 128) bins; mean rounds up
    assert set(pp.index(rows).tolist()) == {32, 96}
    pp.train()
    draws = torch.stack([pp.index(rows) for _ in range(20)])
    assert not torch.equal(pp(rows, cols), pp(rows, cols))
    first = rows[:, 0] == 0
    assert draws[:, first].min() >= 0 and draws[:, first].max() < 64
    assert draws[:, ~first].min() >= 64 and draws[:, ~first].max() < 128
    # the whole model is stochastic in training mode (dropout is 0: only the patch positions)
    model.train()
    assert not torch.equal(model(batch)[0], model(batch)[0])
    model.eval()
    assert torch.equal(model(batch)[0], model(batch)[0])


@pytest.mark.parametrize(
    "name, dims",
    [
        ("79M", (8, 24, 768, 3072, 32)),
        ("364M", (12, 12, 1536, 6144, 128)),
        ("1.18B", (24, 16, 2048, 8192, 128)),
    ],
)
def test_paper_sizes_on_meta(name, dims):
    cfg = get_config(name)
    assert (cfg.n_layer, cfg.n_head, cfg.d_model, cfg.d_ff, cfg.d_head) == dims
    assert cfg.block_size == 1024
    with torch.device("meta"):
        model = Gato(cfg)
    assert all(p.is_meta for p in model.parameters())
    attn = model.blocks[0].attn
    assert attn.qkv.weight.shape == (3 * cfg.n_head * cfg.d_head, cfg.d_model)
    assert attn.proj.weight.shape == (cfg.d_model, cfg.n_head * cfg.d_head)
    assert model.embed.wte.weight.shape == (33088, cfg.d_model)  # 33025 padded to 64
    print(
        f"\n{name}: {model.num_params() / 1e6:.1f}M parameters, "
        f"{model.num_params(non_embedding=True) / 1e6:.1f}M non-embedding, "
        f"{model.estimate_flops_per_token() / 1e9:.2f} GFLOP/token"
    )


def test_init_scaled_for_depth():
    model = Gato(get_config("tiny", n_layer=8))
    std_proj = model.blocks[0].mlp.proj.weight.std().item()
    std_fc = model.blocks[0].mlp.fc.weight.std().item()
    assert abs(std_fc - 0.02) < 0.002
    assert abs(std_proj - 0.02 / 4) < 0.0005  # 0.02 / sqrt(2 * 8)


def test_fourier_bin_init():
    torch.manual_seed(0)
    normal = Gato(get_config("debug")).embed.wte.weight.detach()
    torch.manual_seed(0)
    fourier = Gato(get_config("debug", bin_embedding_init="fourier")).embed.wte.weight.detach()
    bins = slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_BINS)
    # Only the bins change; every other token keeps its normal draw.
    assert torch.equal(normal[:CONTINUOUS_OFFSET], fourier[:CONTINUOUS_OFFSET])
    assert torch.equal(normal[SEPARATOR:], fourier[SEPARATOR:])
    rows = fourier[bins]
    assert abs(rows.pow(2).mean().sqrt().item() - 0.02) < 1e-4  # the same scale as the rest
    sim = torch.nn.functional.cosine_similarity(rows[512:513], rows, dim=1)  # (NUM_BINS,)
    assert sim[513] > sim[516] > sim[528] > sim[640] > 0  # closer bins start more alike
    assert sim[513] < 0.95  # yet neighbours stay distinguishable
    random_sim = torch.nn.functional.cosine_similarity(normal[bins][512:513], normal[bins], dim=1)
    assert random_sim[513].abs() < 0.5  # the normal init has no such structure
    with pytest.raises(ValueError, match="bin_embedding_init"):
        get_config("debug", bin_embedding_init="smooth")


def test_flops_and_mfu():
    model = Gato(get_config("debug"))
    cfg = model.config
    f = model.estimate_flops_per_token()
    n = model.num_params(non_embedding=True) + cfg.padded_vocab_size * cfg.d_model
    assert f == 6 * n + 12 * cfg.n_layer * cfg.attn_dim * cfg.block_size
    assert model.estimate_mfu(1000.0, f * 2000.0) == pytest.approx(0.5)


def test_overfits_one_batch():
    """A real learning check: the debug model memorizes a small fixed batch of episodes."""
    torch.manual_seed(0)
    model = Gato(get_config("debug")).train()
    inputs = GatoInputs.from_sequences([episode(1, steps=4), episode(2, steps=4)])
    targets, mask = inputs.next_token_targets()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    start = time.perf_counter()
    losses = []
    for _ in range(50):
        _, loss = model(inputs, targets, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(
        f"\noverfit: loss {losses[0]:.3f} -> {losses[-1]:.4f} in {time.perf_counter() - start:.1f}s"
    )
    assert losses[-1] < 0.1 * losses[0]


def test_config_round_trip():
    for name in SIZES:
        cfg = get_config(name, dropout=0.1)
        back = GatoConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert back == cfg
    with pytest.raises(ValueError, match="unknown GatoConfig fields"):
        GatoConfig.from_dict({"n_layers": 3})
    with pytest.raises(ValueError, match="unknown model size"):
        get_config("huge")
    with pytest.raises(ValueError, match="multiple of 32"):
        get_config("debug", patch_channels=48)
    assert get_config("debug").padded_vocab_size == 33088
    assert SIZES["debug"].dropout == 0.0  # overrides return copies


def test_a_local_position_past_the_table_raises_instead_of_clamping():
    """episode(1) has timesteps of 20 tokens: local positions 0..19."""
    inputs = GatoInputs.from_sequences([episode(1, steps=2)])
    assert int(inputs.local_positions.max()) == 19
    debug_model(max_local_positions=20)(inputs)  # exactly fits
    with pytest.raises(ValueError, match=r"local position 19 .* table of 16 entries"):
        debug_model(max_local_positions=16)(inputs)
    inputs.local_positions[0, 0] = -1
    with pytest.raises(ValueError, match="local position -1"):
        debug_model(max_local_positions=20)(inputs)


def test_packed_windows_compute_exactly_what_separate_rows_do():
    """A row packed with windows (segments) gives each window the logits and the loss it gets
    as a row of its own: attention never crosses a window and the first token of a window is
    no target (rotary positions are relative, so the offset in the row does not matter)."""
    from gato.sequence import collate, concatenate

    model = debug_model()
    with torch.no_grad():  # O(1) activations, so a leak across windows would show
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, p.shape[-1] ** -0.5)
    full = [episode(1), episode(2, steps=4, discrete_actions=True)]
    # The second and third windows start at an action token: a target only in its own row.
    windows = [full[0].window(0, 37), full[1].window(15, 60), full[0].window(79, 100)]
    assert all(w.loss_mask[0] for w in windows[1:])
    segments = [np.full(len(w), i, np.int32) for i, w in enumerate(windows)]
    packed = GatoInputs.from_batch(collate([concatenate(windows)], 140, [np.concatenate(segments)]))
    alone = [GatoInputs.from_sequences([w]) for w in windows]
    logits, _ = model(packed)
    start = 0
    for w, inputs in zip(windows, alone, strict=True):
        expected, _ = model(inputs)
        torch.testing.assert_close(logits[0, start : start + len(w)], expected[0])
        start += len(w)
    targets, mask = packed.next_token_targets()
    loss_sum = 0.0
    counted = 0
    for inputs in alone:
        t, m = inputs.next_token_targets()
        _, loss = model(inputs, t, m)
        loss_sum += loss.item() * int(m.sum())
        counted += int(m.sum())
    assert int(mask.sum()) == counted  # window starts are not predicted from the window before
    _, loss = model(packed, targets, mask)
    assert abs(loss.item() - loss_sum / counted) < 1e-4
    unpacked = GatoInputs.from_sequences([concatenate(windows)], 140)
    assert unpacked.segments is None  # a plain row keeps the fused causal path
    plain, _ = model(unpacked)
    assert not torch.allclose(plain[0, 40:60], logits[0, 40:60])  # the mask has teeth


def test_packed_windows_cover_every_position_once_in_bounded_buckets():
    from gato.inputs import packed_windows

    # Row 0: windows of 3, 5 and 40 tokens; row 1: 5, 5, 2 and 36.
    lengths = [[3, 5, 40], [5, 5, 2, 36]]
    segments = torch.tensor(
        [np.repeat(np.arange(len(row)), row).tolist() for row in lengths], dtype=torch.int32
    )
    buckets = packed_windows(segments, max_padding=0.25)
    seen = torch.cat([index[valid] for index, valid in buckets])
    assert sorted(seen.tolist()) == list(range(2 * 48))  # each position in exactly one window
    for index, valid in buckets:
        real = valid.sum(1)
        assert real.max() <= index.shape[1] and real.min() * 1.25 >= index.shape[1]
        # Each window's entries are its own consecutive positions, padding repeating the last.
        steps = torch.diff(index, dim=1)
        assert ((steps == 1) | ((steps == 0) & ~valid[:, 1:])).all()
    assert sorted(int(v.sum(1).max()) for _, v in buckets) == [2, 3, 5, 40]
