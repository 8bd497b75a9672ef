"""The value tokenizer: constants, mu-law, continuous/discrete binning, image patches."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gato import tokenizer as tk

HALF_BIN = 1.0 / tk.NUM_BINS  # bins are 2/1024 wide on [-1, 1]


def test_constants_are_the_papers():
    assert (tk.TEXT_VOCAB_SIZE, tk.NUM_BINS, tk.CONTINUOUS_OFFSET) == (32000, 1024, 32000)
    assert (tk.SEPARATOR, tk.VOCAB_SIZE, tk.MU, tk.M) == (33024, 33025, 100, 256)


finite = st.floats(-1e4, 1e4, allow_nan=False, width=64)


@given(hnp.arrays(np.float64, st.integers(1, 50), elements=finite))
def test_mu_law_inverts(x):
    np.testing.assert_allclose(tk.mu_law_decode(tk.mu_law_encode(x)), x, rtol=1e-9, atol=1e-9)


def test_mu_law_known_points_and_monotonic():
    y = tk.mu_law_encode(np.array([-256.0, 0.0, 256.0]))
    np.testing.assert_allclose(y, [-1.0, 0.0, 1.0], atol=1e-12)
    x = np.linspace(-300, 300, 10001)
    assert (np.diff(tk.mu_law_encode(x)) > 0).all()


@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=6), elements=finite))
def test_continuous_round_trip_within_half_a_bin_companded(x):
    tokens = tk.tokenize_continuous(x, mu_law=True)
    assert tokens.dtype == np.int64 and tokens.shape == (x.size,)
    assert ((tokens >= 32000) & (tokens < 33024)).all()
    decoded = tk.detokenize_continuous(tokens, mu_law=True)
    # The round trip is exact to half a bin in the companded domain, where the bins are uniform.
    y = np.clip(tk.mu_law_encode(x.reshape(-1)), -1, 1)
    assert np.abs(tk.mu_law_encode(decoded.astype(np.float64)) - y).max() <= HALF_BIN + 1e-6


@given(hnp.arrays(np.float32, st.integers(1, 100), elements=st.floats(-1, 1, width=32)))
def test_continuous_round_trip_within_half_a_bin_plain(x):
    decoded = tk.detokenize_continuous(tk.tokenize_continuous(x, mu_law=False), mu_law=False)
    assert np.abs(decoded - x).max() <= HALF_BIN + 1e-6


def test_float32_tiny_negative_value_lands_below_zero():
    # -3e-9 companded is about -3e-8, and 1 - 3e-8 rounds to 1.0 in float32: bin 512, not 511.
    for mu_law in (True, False):
        for dtype in (np.float32, np.float64):
            tokens = tk.tokenize_continuous(np.array([-3e-9, 3e-9], dtype), mu_law=mu_law)
            assert tokens.tolist() == [32511, 32512], (mu_law, dtype)


@given(
    hnp.arrays(
        np.float32,
        st.integers(1, 200),
        elements=st.floats(-1e4, 1e4, width=32) | st.floats(-(2**-20), 2**-20, width=32),
    ),
    st.booleans(),
)
def test_float32_tokenizes_exactly_like_float64(x, mu_law):
    np.testing.assert_array_equal(
        tk.tokenize_continuous(x, mu_law=mu_law),
        tk.tokenize_continuous(x.astype(np.float64), mu_law=mu_law),
    )


def test_float32_matches_float64_on_a_large_random_array():
    # Float32 arithmetic moved about 1 value in 25,000 by one bin: 2M values at several scales
    # (observations from 1e-8 to 1e3, actions in [-1, 1]) would show dozens of such moves.
    rng = np.random.default_rng(0)
    scales = 10.0 ** rng.integers(-8, 4, size=2_000_000)
    x = (rng.standard_normal(2_000_000) * scales).astype(np.float32)
    for mu_law, values in ((True, x), (False, np.clip(x, -1, 1))):
        np.testing.assert_array_equal(
            tk.tokenize_continuous(values, mu_law=mu_law),
            tk.tokenize_continuous(values.astype(np.float64), mu_law=mu_law),
        )


def test_bin_edges_and_saturation():
    edges = -1.0 + np.arange(tk.NUM_BINS) * 2.0 / tk.NUM_BINS  # left edge of every bin
    np.testing.assert_array_equal(
        tk.tokenize_continuous(edges, mu_law=False), 32000 + np.arange(1024)
    )
    tokens = tk.tokenize_continuous([1.0, -1.0, np.inf, -np.inf, 5.0, 1e300], mu_law=False)
    np.testing.assert_array_equal(tokens, [33023, 32000, 33023, 32000, 33023, 33023])
    assert tk.tokenize_continuous([np.inf, -np.inf], mu_law=True).tolist() == [33023, 32000]


def test_continuous_flattens_row_major():
    x = np.array([[0.0, 0.5], [-0.5, 1.0]])
    expected = [tk.tokenize_continuous([v], mu_law=False)[0] for v in x.reshape(-1)]
    assert tk.tokenize_continuous(x, mu_law=False).tolist() == expected


def test_continuous_nan_names_the_field():
    with pytest.raises(ValueError, match=r"joint_angles: NaN.*index 2"):
        tk.tokenize_continuous([0.0, 1.0, np.nan], mu_law=True, name="joint_angles")
    with pytest.raises(ValueError, match="numeric"):
        tk.tokenize_continuous(np.array(["a"]), mu_law=True)


def test_detokenize_rejects_non_continuous_tokens():
    with pytest.raises(ValueError, match="31999 is not a continuous token"):
        tk.detokenize_continuous([32000, 31999], mu_law=False)
    with pytest.raises(ValueError, match="not a continuous token"):
        tk.detokenize_continuous([tk.SEPARATOR], mu_law=False)
    with pytest.raises(ValueError, match="integers"):
        tk.detokenize_continuous([32000.0], mu_law=False)


@given(hnp.arrays(np.int64, hnp.array_shapes(max_dims=3), elements=st.integers(0, 1023)))
def test_discrete_is_exact_identity(x):
    tokens = tk.tokenize_discrete(x)
    assert tokens.dtype == np.int64
    np.testing.assert_array_equal(tokens, x.reshape(-1))


def test_discrete_accepts_whole_floats_and_bools():
    assert tk.tokenize_discrete(np.array([3.0, 0.0])).tolist() == [3, 0]
    assert tk.tokenize_discrete(np.array([True, False])).tolist() == [1, 0]


@pytest.mark.parametrize(
    "bad, message",
    [
        ([1024], "1024 is outside"),
        ([-1], "-1 is outside"),
        ([2.5], "must be integers"),
        ([np.nan], "must be integers"),
        (["a"], "dtype"),
    ],
)
def test_discrete_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        tk.tokenize_discrete(np.array(bad), name="grid")


def test_discrete_respects_a_smaller_size():
    with pytest.raises(ValueError, match=r"direction: discrete value 4 is outside \[0, 4\)"):
        tk.tokenize_discrete([0, 4], name="direction", n=4)


def test_patches_are_raster_order_and_scaled():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 32, 3), dtype=np.uint8)
    patches = tk.image_to_patches(image)
    assert patches.shape == (6, 16, 16, 3) and patches.dtype == np.float32
    for k in range(6):
        r, c = divmod(k, 2)  # 3 rows x 2 columns of patches
        block = image[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16].astype(np.float64)
        np.testing.assert_allclose(patches[k], (block / 255 * 2 - 1) / 4, atol=1e-6)
    extremes = tk.image_to_patches(np.array([[0, 255] * 8] * 16, np.uint8))
    assert extremes.min() == -0.25 and extremes.max() == 0.25 and extremes.shape[-1] == 1


def test_batched_patches_equal_per_image():
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 64, 3), dtype=np.uint8)
    batched = tk.image_to_patches(images)
    assert batched.shape == (3, 8, 16, 16, 3)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], tk.image_to_patches(images[i]))


@pytest.mark.parametrize("shape", [(80, 81, 3), (15, 16, 3), (0, 16, 3)])
def test_patches_reject_bad_sizes(shape):
    with pytest.raises(ValueError, match="multiples of 16"):
        tk.image_to_patches(np.zeros(shape, np.uint8))


def test_patches_reject_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        tk.image_to_patches(np.zeros((16, 16, 3), np.float32))


def test_patch_intervals():
    rows, cols = tk.patch_intervals(32, 48)  # 2 x 3 patches
    np.testing.assert_allclose(rows, [[0, 0.5]] * 3 + [[0.5, 1]] * 3)
    np.testing.assert_allclose(cols, [[0, 1 / 3], [1 / 3, 2 / 3], [2 / 3, 1]] * 2, rtol=1e-6)
