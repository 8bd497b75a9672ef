"""GatoPolicy: valid tokens only, the training layout, and cached == uncached acting."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_fixtures import OBS_SPEC, FakeText, debug_model

from gato.envs.task import TaskInfo
from gato.inputs import GatoInputs
from gato.jat import Episode
from gato.policy import GatoPolicy
from gato.sampling import sample_token
from gato.sequence import Kind, concatenate
from gato.serialize import decode_action, tokenize_episode
from gato.specs import ContinuousSpec, DiscreteSpec, action_token_bounds
from gato.tokenizer import CONTINUOUS_OFFSET, NUM_BINS

MODEL = debug_model(0, block_size=32)


def sharp_model():
    """The debug model with O(1) activations: at GPT-2 init (std 0.02) every greedy action is
    the same token, which would let a wrong memory pass the cached == uncached test."""
    model = debug_model(7, block_size=32)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, p.shape[-1] ** -0.5)
    return model


SHARP = sharp_model()

STATE_SPEC = {"continuous_observations": ContinuousSpec((5,))}


def task(action_spec, obs_spec=None) -> TaskInfo:
    return TaskInfo("test.task", "dmc", None, obs_spec or STATE_SPEC, action_spec, 100)


def state_obs(rng) -> dict:
    return {"continuous_observations": rng.normal(size=5).astype(np.float32)}


def state_demo(rng, steps: int, action_dims: int, reward: float = 0.0) -> Episode:
    """A demonstration of STATE_SPEC observations and continuous actions."""
    return Episode(
        "test.task",
        {"continuous_observations": rng.normal(size=(steps, 5))},
        rng.uniform(-1, 1, (steps, action_dims)),
        np.full(steps, reward, np.float32),
    )


def rich_obs(rng) -> dict:
    """One step of model_fixtures.OBS_SPEC: text, an image, discrete and continuous values."""
    return {
        "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "state": rng.normal(size=3),
        "grid": rng.integers(0, 10, 2),
        "mission": "red ball",
    }


# ------------------------------------------------------------------------- valid tokens


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    lo=st.integers(0, 33000),
    width=st.integers(1, 1024),
    temperature=st.sampled_from([0.0, 0.1, 1.0, 5.0, 1e4]),
    scale=st.sampled_from([1.0, 1e4, 1e30]),
)
def test_sample_token_stays_in_range_whatever_the_logits(seed, lo, width, temperature, scale):
    hi = min(lo + width, 33025)
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(33025, generator=gen) * scale
    logits[:lo] += 3 * scale  # invalid tokens are the most likely ones
    logits[hi:] = float("inf") if seed % 2 else 3 * scale
    token = sample_token(logits, lo, hi, greedy=False, temperature=temperature, generator=gen)
    assert lo <= token < hi
    assert lo <= sample_token(logits, lo, hi, greedy=True) < hi


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**31),
    discrete=st.booleans(),
    n=st.integers(1, 12),
    dims=st.integers(1, 3),
    temperature=st.sampled_from([0.5, 1.0, 3.0]),
    greedy=st.booleans(),
)
def test_policy_never_emits_an_invalid_token(seed, discrete, n, dims, temperature, greedy):
    spec = DiscreteSpec((dims,), n) if discrete else ContinuousSpec((dims,), -2.0, 0.5)
    info = task(spec)
    policy = GatoPolicy(SHARP, info, greedy=greedy, temperature=temperature, seed=seed)
    lo, hi = action_token_bounds(spec)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        action = policy.act(state_obs(rng))
        tokens = policy.last_action_tokens
        assert tokens.shape == (dims,)
        assert ((tokens >= lo) & (tokens < hi)).all()
        if discrete:
            assert action.dtype == np.int64 and ((action >= 0) & (action < n)).all()
        else:
            assert action.dtype == np.float32 and action.shape == (dims,)
            assert ((action >= -2.0) & (action <= 0.5)).all()
        np.testing.assert_array_equal(action, decode_action(tokens, spec))


def test_discrete_scalar_action_is_an_int():
    policy = GatoPolicy(MODEL, task(DiscreteSpec((), 7)), seed=0)
    action = policy.act(state_obs(np.random.default_rng(0)))
    assert type(action) is int and 0 <= action < 7


def test_continuous_tokens_are_bins():
    policy = GatoPolicy(MODEL, task(ContinuousSpec((4,))), temperature=2.0, seed=1)
    policy.act(state_obs(np.random.default_rng(0)))
    t = policy.last_action_tokens
    assert ((t >= CONTINUOUS_OFFSET) & (t < CONTINUOUS_OFFSET + NUM_BINS)).all()


# --------------------------------------------------------------------- layout and memory


def test_stream_has_the_training_layout():
    """What the policy feeds equals tokenize_episode of the same observations and actions."""
    spec = ContinuousSpec((2,))
    info = task(spec, OBS_SPEC)
    policy = GatoPolicy(
        MODEL, info, context_tokens=512, use_cache=False, seed=0, text_tokenizer=FakeText()
    )
    rng = np.random.default_rng(0)
    steps = [rich_obs(rng) for _ in range(4)]
    actions = np.stack([policy.act(o) for o in steps])
    row = policy.row(0)
    policy._feed([0], [row.pending.pop()])  # the last action token is pending until the next step
    stacked = {
        k: [s[k] for s in steps] if k == "mission" else np.stack([s[k] for s in steps])
        for k in OBS_SPEC
    }
    expected = tokenize_episode(stacked, actions, OBS_SPEC, spec, FakeText())
    got = row.stream
    for name in ("tokens", "kinds", "local_positions", "timesteps"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    np.testing.assert_array_equal(got.patches, expected.patches)


def test_prompt_is_context_only_and_cut_to_prompt_tokens():
    spec = ContinuousSpec((1,))
    info = task(spec)
    rng = np.random.default_rng(0)
    demo = state_demo(rng, 50, 1, reward=1.0)
    policy = GatoPolicy(MODEL, info, prompt_tokens=20, use_cache=False, seed=0)
    policy.reset(demo)
    assert policy.prompt_length == 20 and policy.tokens_fed == 20
    prompt = policy.row(0).pending[0]
    assert not prompt.loss_mask.any()
    assert (prompt.kinds[:5] == Kind.CONTINUOUS).all() and prompt.kinds[5] == Kind.SEPARATOR
    policy.act(state_obs(rng))
    assert policy.row(0).stream.local_positions[20] == 0  # the episode's first step starts at 0
    policy.reset()
    assert policy.tokens_fed == 0 and policy.timestep == 0


@pytest.mark.parametrize("discrete", [False, True])
def test_cached_equals_uncached_greedy_after_sliding(discrete):
    spec = DiscreteSpec((2,), 7) if discrete else ContinuousSpec((2,))
    info = task(spec, OBS_SPEC)
    ctx = 24  # steps are 16 tokens: the memory slides every other step
    rng = np.random.default_rng(3)
    n = 8
    demo = Episode(
        "test.task",
        {
            "image": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            "state": rng.normal(size=(n, 3)),
            "grid": rng.integers(0, 10, (n, 2)),
            "mission": ["door"] * n,
        },
        rng.integers(0, 7, (n, 2)) if discrete else rng.uniform(-1, 1, (n, 2)),
        np.zeros(n, np.float32),
    )
    kwargs = dict(context_tokens=ctx, greedy=True, text_tokenizer=FakeText())
    cached = GatoPolicy(SHARP, info, use_cache=True, **kwargs)
    uncached = GatoPolicy(SHARP, info, use_cache=False, **kwargs)
    for _ in range(2):  # a reset in between must forget everything
        cached.reset(demo)
        uncached.reset(demo)
        seen = []
        for _ in range(12):
            obs = rich_obs(rng)
            a, b = cached.act(obs), uncached.act(obs)
            np.testing.assert_array_equal(cached.last_action_tokens, uncached.last_action_tokens)
            np.testing.assert_array_equal(a, b)
            seen.extend(cached.last_action_tokens.tolist())
        assert len(set(seen)) >= 3  # the actions depend on the context: the check has teeth
        assert cached.tokens_fed > 5 * ctx  # slid several times
        assert cached._cache.positions[0] + 1 == cached.tokens_fed
        assert len(uncached.row(0).stream) == SHARP.config.n_layer * (ctx - 1) + 1


def test_same_seed_same_actions_and_reset_reseeds():
    info = task(ContinuousSpec((3,)))
    obs = [state_obs(np.random.default_rng(i)) for i in range(5)]
    a = GatoPolicy(MODEL, info, temperature=1.0, seed=7)
    b = GatoPolicy(MODEL, info, temperature=1.0, seed=7)
    first = [a.act(o) for o in obs]
    np.testing.assert_array_equal(first, [b.act(o) for o in obs])
    a.reset(seed=7)
    np.testing.assert_array_equal(first, [a.act(o) for o in obs])


def test_wrong_observation_layout_is_a_clear_error():
    policy = GatoPolicy(MODEL, task(ContinuousSpec((1,))), seed=0)
    with pytest.raises(ValueError, match="missing"):
        policy.act({"image_observations": np.zeros((16, 16, 3), np.uint8)})
    with pytest.raises(ValueError, match="shape"):
        policy.act({"continuous_observations": np.zeros(4, np.float32)})


# ----------------------------------------------------------------------- batched acting


def _demo(rng, steps: int, mission: str, discrete: bool) -> Episode:
    return Episode(
        "test.task",
        {
            "image": rng.integers(0, 256, (steps, 32, 32, 3), dtype=np.uint8),
            "state": rng.normal(size=(steps, 3)),
            "grid": rng.integers(0, 10, (steps, 2)),
            "mission": [mission] * steps,
        },
        rng.integers(0, 7, (steps, 2)) if discrete else rng.uniform(-1, 1, (steps, 2)),
        np.zeros(steps, np.float32),
    )


@pytest.mark.parametrize("memory", ["sliding", "window"])
@pytest.mark.parametrize(
    "discrete,greedy", [(False, True), (True, True), (False, False), (True, False)]
)
def test_batched_rows_equal_single_env_policies(discrete, greedy, memory):
    """One policy with 3 rows acts exactly like 3 single-env policies: prompts of different
    lengths, observations of different token counts (mission texts), a row that starts late
    and one that restarts mid-way, a memory that slides. Logits agree to 1e-5 and the actions
    are identical, greedy and sampled (each row draws from its own seeded generator). With
    window memory the single-env policies read every window from scratch (no cache, every
    image patch encoded again), so the batched cache and patch reuse are checked too."""
    spec = DiscreteSpec((2,), 7) if discrete else ContinuousSpec((2,))
    info = task(spec, OBS_SPEC)
    rng = np.random.default_rng(11)
    missions = ["red ball", "door", "the green key"]
    demos = [_demo(rng, n, m, discrete) for n, m in zip((1, 3, 5), missions, strict=True)]
    kwargs = dict(context_tokens=48, prompt_tokens=40, greedy=greedy, text_tokenizer=FakeText())
    batched = GatoPolicy(SHARP, info, num_envs=3, memory=memory, **kwargs)
    cached = memory == "sliding"
    singles = [GatoPolicy(SHARP, info, memory=memory, use_cache=cached, **kwargs) for _ in range(3)]
    for i in (0, 1):
        batched.start(i, demos[i], seed=100 + i)
        singles[i].reset(demos[i], seed=100 + i)
    batched.stop(2)  # row 2 joins later
    seen = set()
    for t in range(14):
        if t == 3:
            batched.start(2, demos[2], seed=102)
            singles[2].reset(demos[2], seed=102)
        if t == 7:  # row 1's episode ends: it restarts with another prompt and seed
            batched.start(1, demos[0], seed=200)
            singles[1].reset(demos[0], seed=200)
        if t == 11:
            batched.stop(0)
        obs = {}
        for i in batched.active:
            o = rich_obs(rng)
            o["mission"] = missions[i]
            if t % 2:  # frames that repeat patches: the batched policy reuses their encodings
                o["image"] = demos[1 + i % 2].observations["image"][t % 3]
            obs[i] = o
        actions = batched.act_batch(obs)
        assert sorted(actions) == sorted(obs)
        for i, o in obs.items():
            expected = singles[i].act(o)
            np.testing.assert_array_equal(actions[i], expected)
            np.testing.assert_array_equal(
                batched.row(i).last_action_tokens, singles[i].last_action_tokens
            )
            diff = (batched.row(i).last_logits - singles[i].row(0).last_logits).abs().max()
            assert diff.item() < 1e-5, (t, i, diff.item())
            seen.update(singles[i].last_action_tokens.tolist())
    assert len(seen) >= 4  # actions depend on the context: the comparison has teeth
    assert batched.row(1).tokens_fed > 48  # the memory slid
    if memory == "window":  # patches met before were not encoded again
        assert batched._patches.hits > 0 and batched._patches.misses > 0


def test_act_batch_needs_every_active_row():
    info = task(ContinuousSpec((1,)))
    policy = GatoPolicy(MODEL, info, num_envs=2, seed=0)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        policy.act_batch({0: state_obs(rng)})
    policy.stop(1)
    with pytest.raises(ValueError, match=r"not active \[1\]"):
        policy.act_batch({0: state_obs(rng), 1: state_obs(rng)})
    with pytest.raises(ValueError, match="outside"):
        policy.start(2)
    with pytest.raises(ValueError, match="rows"):
        policy.act(state_obs(rng))  # two-row policies act through act_batch


def test_bf16_policy_acts_and_stays_close_to_float32():
    """The deploy/evaluate --bf16 path: a bfloat16 model (and cache) acts with valid tokens,
    its logits close to float32's; image pixels are cast to the model's dtype. Only the first
    token of the first step has the same inputs in both: later ones read the actions each
    policy chose, which may differ."""
    info = task(ContinuousSpec((2,)), OBS_SPEC)
    bf16 = sharp_model().to(torch.bfloat16)
    kwargs = dict(greedy=True, text_tokenizer=FakeText(), seed=0)
    low, full = GatoPolicy(bf16, info, **kwargs), GatoPolicy(SHARP, info, **kwargs)
    rng = np.random.default_rng(5)
    for step in range(3):
        obs = rich_obs(rng)
        low.act(obs)
        full.act(obs)
        assert low.row(0).last_logits.dtype == low._cache.k[0].dtype == torch.bfloat16
        assert ((low.last_action_tokens >= 32000) & (low.last_action_tokens < 33024)).all()
        if step == 0:
            a, b = low.row(0).last_logits[0].float(), full.row(0).last_logits[0]
            assert (a - b).abs().max().item() < 0.1 * (b.max() - b.min()).item()


# ------------------------------------------------------------------------- window memory


@pytest.mark.parametrize("use_cache", [True, False])
def test_window_memory_reads_what_a_training_window_reads(use_cache):
    """memory='window': every action token's logits equal a plain forward over the prompt and
    the longest run of the episode's latest tokens that starts at a timestep and fits
    `context_tokens` (tokenize_episode of the observations and actions taken): what a packed
    training window of whole timesteps reads. Cached (the prompt fed once, the window extended
    or fed again as it slides) and from scratch alike."""
    spec = ContinuousSpec((2,))
    info = task(spec)
    rng = np.random.default_rng(5)
    demo = state_demo(rng, 6, 2)
    ctx, prompt_tokens = 16, 4  # steps are 8 tokens: the window holds two
    policy = GatoPolicy(
        SHARP, info, context_tokens=ctx, prompt_tokens=prompt_tokens, greedy=True,
        memory="window", use_cache=use_cache,
    )  # fmt: skip
    policy.reset(demo)
    assert (policy._cache is None) != use_cache and len(policy.row(0).prompt) == prompt_tokens
    steps = [state_obs(rng) for _ in range(6)]
    logits, actions = [], []
    for o in steps:
        actions.append(policy.act(o))
        logits.append(policy.row(0).last_logits)
    stacked = {"continuous_observations": np.stack([s["continuous_observations"] for s in steps])}
    stream = tokenize_episode(stacked, np.stack(actions), STATE_SPEC, spec)
    prompt = tokenize_episode(demo.observations, demo.actions, STATE_SPEC, spec)
    prompt = prompt.window(0, prompt_tokens).without_targets()
    seen = set()
    for t in range(len(steps)):
        for k in range(2):
            end = 8 * t + 6 + k  # position of action token k of step t
            start = 8 * max(t - 1, 0)  # the step before and this one: 8 + 6 + k <= 16 tokens
            window = stream.window(start, end)
            inputs = GatoInputs.from_sequences([concatenate([prompt, window])])
            with torch.no_grad():
                expected, _ = SHARP(inputs, last_only=True)
            diff = (logits[t][k] - expected[0, slice(*policy.vocab)]).abs().max().item()
            assert diff < 1e-5, (t, k, diff)
            seen.add(int(stream.tokens[end]))
    assert len(seen) >= 3  # the actions depend on the window: the comparison has teeth
    with pytest.raises(ValueError, match="memory must be one of"):
        GatoPolicy(MODEL, info, memory="cache")
