"""gato.data: weighted windows, prompts, splits, lazy tokenization, determinism, workers."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gato.data import (
    FAMILY_WEIGHTS,
    DataConfig,
    SequenceSampler,
    make_loader,
    resolve_weights,
)
from gato.datasets import summarize, write_json_atomic
from gato.jat import Episode, episode_to_sequence, write_shard
from gato.sequence import Kind, TokenSequence
from gato.serialize import tokenize_document
from gato.specs import ContinuousSpec, DiscreteSpec, ImageSpec, TextSpec

VECTOR, IMAGE, TEXT_OBS = "cartpole.fake", "atari.fake", "babyai.fake"
SPECS = {
    VECTOR: ("dmc", {"continuous_observations": ContinuousSpec((5,))}, ContinuousSpec((1,))),
    IMAGE: ("atari", {"image_observations": ImageSpec(32, 32, 3)}, DiscreteSpec((), 6)),
    TEXT_OBS: (
        "babyai",
        {"discrete_observations": DiscreteSpec((5,), 11), "text_observations": TextSpec()},
        DiscreteSpec((), 7),
    ),
}


def _episode(task: str, index: int, rng: np.random.Generator) -> Episode:
    _, obs_spec, action_spec = SPECS[task]
    t = int(rng.integers(8, 40))
    if task == VECTOR:
        obs = {"continuous_observations": rng.normal(size=(t, 5)).astype(np.float32)}
        actions = rng.uniform(-1, 1, (t, 1)).astype(np.float32)
    elif task == IMAGE:
        obs = {"image_observations": rng.integers(0, 256, (t, 32, 32, 3), dtype=np.uint8)}
        actions = rng.integers(0, 6, t)
    else:
        missions = [f"go to the {c} ball" for c in ("red", "green", "purple box and the")]
        obs = {
            "discrete_observations": rng.integers(0, 11, (t, 5)),
            "text_observations": [missions[(index + s // 10) % 3] for s in range(t)],
        }
        actions = rng.integers(0, 7, t)
    rewards = np.zeros(t, np.float32)
    rewards[-1] = 1.0  # equal returns: every episode passes the 80% filter
    return Episode(task, obs, actions, rewards, seed=index, episode_index=index, success=True)


def make_task(root: Path, task: str, episodes: int, seed: int = 0) -> list[Episode]:
    """A collected task folder (shards + complete metadata) of synthetic episodes."""
    family, obs_spec, action_spec = SPECS[task]
    rng = np.random.default_rng(seed)
    eps = [_episode(task, i, rng) for i in range(episodes)]
    write_shard(root / task, eps)
    info = SimpleNamespace(
        name=task,
        family=family,
        jat_name=None,
        obs_spec=obs_spec,
        action_spec=action_spec,
        max_episode_steps=100,
    )
    rows = [
        dict(episode_index=e.episode_index, seed=e.seed, ret=e.total_return, length=e.num_steps)
        for e in eps
    ]
    summaries = [{**r, "return": r.pop("ret"), "success": True} for r in rows]
    meta = summarize(info, summaries, [0.0], {})
    write_json_atomic(root / task / "metadata.json", {**meta, "complete": True})
    return eps


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    episodes = {VECTOR: make_task(root, VECTOR, 6), IMAGE: make_task(root, IMAGE, 4)}
    episodes[TEXT_OBS] = make_task(root, TEXT_OBS, 5)
    return SimpleNamespace(root=root, episodes=episodes)


def config(data, **kw) -> DataConfig:
    return DataConfig(data_dir=str(data.root), **{"seq_len": 64, **kw})


def test_rows_are_valid_and_padded_to_length(data, chars):
    sampler = SequenceSampler(config(data), text_tokenizer=chars)
    assert sampler.tasks == sorted(SPECS)
    for index in range(60):
        seq, task, prompt = sampler.sample(3, index)
        seq.validate()
        assert len(seq) <= 64 and 0 <= prompt <= 32 and task in SPECS
        assert not seq.loss_mask[:prompt].any()  # prompt tokens are never targets
    # A batch never mixes images of other channel counts here, so every batch collates.
    batch = sampler.rows(5, range(16))
    assert batch.batch.shape == (16, 64) and len(batch.tasks) == 16
    assert batch.batch.patches.shape[0] == int((batch.batch.kinds == Kind.IMAGE).sum())
    assert batch.domains == [SPECS[t][0] for t in batch.tasks]
    assert batch.prompt_tokens.shape == (16,)


def _full(data, task, episode, chars) -> TokenSequence:
    ep = data.episodes[task][episode]
    info = SimpleNamespace(obs_spec=SPECS[task][1], action_spec=SPECS[task][2])
    return episode_to_sequence(ep, info, chars)


def _same(a: TokenSequence, b: TokenSequence) -> None:
    for name in TokenSequence.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("task", [IMAGE, TEXT_OBS])
def test_lazy_tokenization_equals_cutting_the_whole_episode(data, chars, task):
    sampler = SequenceSampler(config(data, tasks=(task,), val_episodes=0), text_tokenizer=chars)
    source = sampler.sources[0]
    rng = np.random.default_rng(0)
    for i in range(len(source)):
        full = _full(data, task, i, chars)
        assert source.num_tokens(i) == len(full)
        spans = [(0, len(full)), (len(full), len(full)), (0, 1), (len(full) - 1, len(full))]
        spans += [tuple(sorted(rng.integers(0, len(full) + 1, 2))) for _ in range(10)]
        for a, b in spans:
            _same(source.tokens(i, int(a), int(b)), full.window(int(a), int(b)))


def test_prompt_statistics_and_provenance(data, chars):
    # L = 128: a prompt's budget (64) holds several timesteps (of up to 40 tokens) here.
    cfg = config(data, tasks=(VECTOR, TEXT_OBS), seq_len=128)
    sampler = SequenceSampler(cfg, text_tokenizer=chars)
    plans = [sampler.describe(7, i) for i in range(2000)]
    prompted = [p for p in plans if p.prompt_kind != "none"]
    # Binomial(2000, 0.25): sd ~19; 4 sd either side.
    assert abs(len(prompted) - 500) < 80
    ends = sum(p.prompt_kind == "end" for p in prompted)
    assert abs(ends - len(prompted) / 2) < 4 * np.sqrt(len(prompted) / 4)
    for p in prompted:
        assert p.prompt_episode != p.episode  # another episode of the same task
        assert 0 < p.prompt_length <= 64 and p.prompt_length + p.length <= 128
    # The rows hold exactly what the plans say: the prompt's tokens (untargeted), then the window.
    source_of = dict(zip(sampler.tasks, sampler.sources, strict=True))
    for index, p in enumerate(plans[:200]):
        seq, task, n_prompt = sampler.sample(7, index)
        assert (task, n_prompt) == (p.task, p.prompt_length)
        full = _full(data, p.task, p.episode, chars)
        _same(seq.window(n_prompt, len(seq)), full.window(p.start, p.start + p.length))
        if n_prompt:
            other = _full(data, p.task, p.prompt_episode, chars)
            span = p.prompt_start, p.prompt_start + n_prompt
            _same(seq.window(0, n_prompt), other.window(*span).without_targets())
            source = source_of[p.task]
            offsets = source.offsets[source.indices.index(p.prompt_episode)]
            assert p.prompt_start in offsets and span[1] in offsets  # whole timesteps
            if p.prompt_kind == "end":
                assert span[1] == len(other)


def test_no_prompts_for_single_episode_tasks_and_prompt_prob_zero(data, chars):
    sampler = SequenceSampler(config(data, tasks=(VECTOR,), prompt_prob=0.0))
    assert all(sampler.describe(0, i).prompt_kind == "none" for i in range(200))
    sampler = SequenceSampler(config(data, tasks=(VECTOR,), prompt_prob=1.0, prompt_end_prob=1.0))
    assert all(sampler.describe(0, i).prompt_kind == "end" for i in range(100))


def test_weights_change_the_mix(data, chars):
    cfg = config(data, tasks=(VECTOR, TEXT_OBS), task_weights={VECTOR: 3.0, TEXT_OBS: 1.0})
    sampler = SequenceSampler(cfg, text_tokenizer=chars)
    assert sampler.tasks == [VECTOR, TEXT_OBS]  # the config's order
    np.testing.assert_allclose(sampler.weights, [0.75, 0.25])
    share = np.mean([sampler.describe(1, i).task == VECTOR for i in range(2000)])
    assert abs(share - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 2000)
    only = SequenceSampler(config(data, task_weights={"babyai": 0.0, "atari": 0}))
    assert only.tasks == [VECTOR] and {only.describe(0, i).task for i in range(50)} == {VECTOR}


def test_default_weights_follow_table_1():
    families = {"a.1": "metaworld", "a.2": "metaworld", "c": "dmc", "text": "text"}
    w = resolve_weights(families, {})
    assert w == {
        "a.1": FAMILY_WEIGHTS["metaworld"] / 2,
        "a.2": FAMILY_WEIGHTS["metaworld"] / 2,
        "c": FAMILY_WEIGHTS["dmc"],
        "text": FAMILY_WEIGHTS["text"],
    }
    w = resolve_weights(families, {"metaworld": 1.0, "a.1": 2.0})
    assert (w["a.1"], w["a.2"]) == (2.0, 1.0)  # a task's own weight wins over its family's
    with pytest.raises(ValueError, match="no data"):
        resolve_weights(families, {"atari": 1.0})
    with pytest.raises(ValueError, match="no data"):
        resolve_weights(families, {"metaworld.nonexistent": 1.0})
    with pytest.raises(ValueError, match="weight 0"):
        resolve_weights({"c": "dmc"}, {"c": 0.0})


def test_determinism_and_disjoint_rank_rows(data, chars):
    a = SequenceSampler(config(data), text_tokenizer=chars)
    b = SequenceSampler(config(data), text_tokenizer=chars)
    for index in range(20):
        _same(a.sample(4, index)[0], b.sample(4, index)[0])
    whole = a.rows(4, range(8))
    halves = [a.rows(4, range(0, 4)), a.rows(4, range(4, 8))]  # two ranks' shares of a step
    np.testing.assert_array_equal(
        whole.batch.tokens, np.concatenate([h.batch.tokens for h in halves])
    )
    plans = [a.describe(4, i) for i in range(8)]
    assert len(set(plans)) == 8  # distinct indices are distinct rows
    assert a.describe(5, 0) != a.describe(4, 0)
    other = SequenceSampler(config(data, seed=1), text_tokenizer=chars)
    assert [other.describe(4, i) for i in range(8)] != plans


def _flat(loader, steps):
    out = []
    for _, (step, micro) in zip(range(steps), loader, strict=False):
        out.append((step, [(m.batch.tokens, m.batch.patches, m.tasks) for m in micro]))
    return out


def _assert_same_steps(x, y):
    assert [s for s, _ in x] == [s for s, _ in y]
    for (_, mx), (_, my) in zip(x, y, strict=True):
        for (tx, px, kx), (ty, py, ky) in zip(mx, my, strict=True):
            np.testing.assert_array_equal(tx, ty)
            np.testing.assert_array_equal(px, py)
            assert kx == ky


def _two_micro_batches(step):
    return [range(0, 3), range(3, 6)]


def test_loader_same_for_any_workers_and_on_resume(data, chars):
    sampler = SequenceSampler(config(data), text_tokenizer=chars)
    inline = _flat(make_loader(sampler, 0, _two_micro_batches, num_workers=0), 4)
    workers = _flat(make_loader(sampler, 0, _two_micro_batches, num_workers=2, prefetch=2), 4)
    _assert_same_steps(inline, workers)
    resumed = _flat(make_loader(sampler, 2, _two_micro_batches, num_workers=0), 2)
    _assert_same_steps(resumed, inline[2:])
    assert inline[0][1][0][0].shape == (3, 64)


def test_train_and_val_are_disjoint(data, chars):
    cfg = config(data, val_episodes=2)
    train = SequenceSampler(cfg, text_tokenizer=chars)
    val = SequenceSampler(cfg, split="val", text_tokenizer=chars)
    for task, t_src in zip(train.tasks, train.sources, strict=True):
        v_src = val.sources[val.tasks.index(task)]
        n = len(data.episodes[task])
        assert v_src.indices == list(range(n - 2, n))  # the last ones by index
        assert t_src.indices == list(range(n - 2))
    assert {val.describe(0, i).episode for i in range(200)} <= {2, 3, 4, 5}
    assert val.state_dict()["split"] == "val"


def test_val_split_of_tiny_tasks(tmp_path, chars):
    make_task(tmp_path, VECTOR, 1)
    make_task(tmp_path, IMAGE, 2)
    cfg = DataConfig(data_dir=str(tmp_path), seq_len=32, val_episodes=5)
    train = SequenceSampler(cfg)
    assert [len(s) for s in train.sources] == [1, 1]  # one episode always stays for training
    val = SequenceSampler(cfg, split="val")
    assert val.tasks == [IMAGE]  # a 1-episode task holds nothing out
    assert all(train.describe(0, i).prompt_kind == "none" for i in range(100))


def test_text_documents(tmp_path, chars):
    docs = ["a short one", "x" * 300, "the third document is the validation one"]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": d}) for d in docs[:2]) + "\n")
    (tmp_path / "three.txt").write_text(docs[2])
    cfg = DataConfig(
        data_dir=str(tmp_path / "none"), text_files=(str(jsonl), str(tmp_path / "three.txt"))
    )
    cfg.seq_len = 64
    train = SequenceSampler(cfg, text_tokenizer=chars)
    assert train.tasks == ["text"] and train.families == ["text"]
    for index in range(50):
        plan = train.describe(0, index)
        seq, task, prompt = train.sample(0, index)
        assert task == "text" and prompt == 0 and plan.episode in (0, 1)
        expected = tokenize_document(docs[plan.episode], chars)
        _same(seq, expected.window(plan.start, plan.start + plan.length))
        assert seq.loss_mask.all()
    val = SequenceSampler(cfg, split="val", text_tokenizer=chars)
    assert {val.describe(0, i).episode for i in range(20)} == {2}


def test_state_dict_round_trip_and_mismatch(data, chars):
    sampler = SequenceSampler(config(data), text_tokenizer=chars)
    state = json.loads(json.dumps(sampler.state_dict()))
    SequenceSampler(config(data), text_tokenizer=chars).load_state_dict(state)
    moved = dict(state, config={**state["config"], "data_dir": "/elsewhere"})
    sampler.load_state_dict(moved)  # the data may move
    with pytest.raises(ValueError, match="seed"):
        SequenceSampler(config(data, seed=3), text_tokenizer=chars).load_state_dict(state)
    fewer = SequenceSampler(config(data, tasks=(VECTOR,)))
    with pytest.raises(ValueError, match="does not match"):
        fewer.load_state_dict(state)


def test_clear_errors(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="make data"):
        SequenceSampler(DataConfig(data_dir=str(tmp_path / "missing")))
    with pytest.raises(FileNotFoundError, match="make data"):
        SequenceSampler(DataConfig(data_dir=str(tmp_path)))  # exists, but nothing collected
    with pytest.raises(FileNotFoundError, match="make data"):
        SequenceSampler(config(data, tasks=("cartpole.swingup",)))  # known, not collected
    with pytest.raises(ValueError, match="unknown task"):
        SequenceSampler(config(data, tasks=("cartpol.balance",)))
    with pytest.raises(ValueError, match="no data"):
        SequenceSampler(config(data, task_weights={"metaworld": 1.0}))
    with pytest.raises(ValueError, match="split"):
        SequenceSampler(config(data), split="test")
    with pytest.raises(ValueError, match="max_prompt_frac"):
        SequenceSampler(config(data, max_prompt_frac=1.0))


def test_real_data_with_sentencepiece(collected):
    cfg = DataConfig(data_dir=str(collected), tasks=("cartpole.balance", "babyai.open"))
    sampler = SequenceSampler(cfg)
    batch = sampler.rows(0, range(8))
    assert batch.batch.shape == (8, 1024)
    assert (batch.batch.kinds != Kind.PAD).sum(axis=1).min() > 0
    assert {"dmc", "babyai"} >= set(batch.domains)


@pytest.mark.slow
def test_real_pong_rows(collected):
    cfg = DataConfig(data_dir=str(collected), tasks=("atari.pong",), prompt_prob=0.5)
    sampler = SequenceSampler(cfg)
    for index in range(8):
        seq, _, prompt = sampler.sample(0, index)
        seq.validate()
        assert len(seq) == 1024 and not seq.loss_mask[:prompt].any()
        # 80x80 RGB frames: 25 patches, '|', one action = 27 tokens per timestep.
        assert sampler.sources[0].fixed_tokens == 27
    batch = sampler.rows(1, range(4))
    assert batch.batch.patches.shape[1:] == (16, 16, 3)


def test_held_out_tasks_are_never_in_the_default_mix(data, chars, tmp_path):
    """GATO_SPEC.md section 9: cartpole.swingup, metaworld.assembly and atari.boxing are held
    out for fine-tuning; their data in the folder stays out unless a run names them."""
    import shutil

    from gato.data import HELD_OUT_TASKS

    assert set(HELD_OUT_TASKS) == {"cartpole.swingup", "metaworld.assembly", "atari.boxing"}
    root = tmp_path / "data"
    shutil.copytree(data.root, root)
    shutil.copytree(root / VECTOR, root / "cartpole.swingup")  # as if it had been collected
    sampler = SequenceSampler(DataConfig(data_dir=str(root), seq_len=64), text_tokenizer=chars)
    assert sampler.tasks == sorted(SPECS) and sampler.held_out == ["cartpole.swingup"]
    named = SequenceSampler(DataConfig(data_dir=str(root), tasks=("cartpole.swingup",)))
    assert named.tasks == ["cartpole.swingup"] and named.held_out == []
    only = tmp_path / "only"
    shutil.copytree(root / "cartpole.swingup", only / "cartpole.swingup")
    with pytest.raises(FileNotFoundError, match="only held-out tasks: cartpole.swingup"):
        SequenceSampler(DataConfig(data_dir=str(only)))


def test_packed_rows_hold_short_windows_of_one_task(data, chars):
    """window_steps=2: every episode row is filled to L with windows of two whole timesteps
    from a timestep start (the last one cut to the room left), each after its prompt, if
    drawn, of at most half the task's window; each exactly the plan's tokens, with the segment
    index of its window. Text-observation tasks pack too."""
    cfg = config(data, tasks=(VECTOR, TEXT_OBS), seq_len=96, window_steps=2)
    sampler = SequenceSampler(cfg, text_tokenizer=chars)
    longest = {t: s.longest_timestep() for t, s in zip(sampler.tasks, sampler.sources, strict=True)}
    assert sampler.window_tokens == {t: 2 * n for t, n in longest.items()}
    assert longest[VECTOR] == 7  # 5 observations, '|', 1 action
    batch = sampler.rows(3, range(24))
    seen_prompt = False
    for r in range(24):
        plans = sampler.describe_row(3, r)
        assert {p.task for p in plans} == {batch.tasks[r]}  # one task per row, by weight
        window = sampler.window_tokens[batch.tasks[r]]
        sizes = [p.length + p.prompt_length for p in plans]
        assert sum(sizes) == 96 and len(plans) >= 96 // (window + window // 2)  # full rows
        segments = batch.batch.segments[r]
        np.testing.assert_array_equal(segments, np.repeat(np.arange(len(plans)), sizes))
        start = 0
        source = sampler.sources[sampler.tasks.index(batch.tasks[r])]
        for j, (p, size) in enumerate(zip(plans, sizes, strict=True)):
            assert p.prompt_length <= window // 2 and p.length <= window
            offsets = list(source.offsets[source.indices.index(p.episode)])
            assert p.start in offsets  # from a timestep start ...
            k = offsets.index(p.start)
            whole = offsets[min(k + 2, len(offsets) - 1)] - p.start  # ... two whole timesteps
            assert p.length == whole or (j == len(plans) - 1 and p.length < whole)
            seen_prompt |= p.prompt_length > 0
            full = _full(data, p.task, p.episode, chars)
            got = batch.batch.tokens[r, start + p.prompt_length : start + size]
            np.testing.assert_array_equal(got, full.tokens[p.start : p.start + p.length])
            start += size
    assert seen_prompt and len(set(batch.tasks)) == 2
    assert sampler.describe(3, 0) == sampler.describe_row(3, 0)[0]
    unpacked = SequenceSampler(config(data, tasks=(VECTOR,), seq_len=96), text_tokenizer=chars)
    assert not unpacked.rows(3, range(4)).batch.segments.any()


def test_packing_is_recorded_and_old_checkpoints_still_resume(data, chars):
    packed = SequenceSampler(config(data, tasks=(VECTOR,), window_steps=2), text_tokenizer=chars)
    state = json.loads(json.dumps(packed.state_dict()))
    assert state["window_tokens"] == {VECTOR: 14} and state["config"]["window_steps"] == 2
    plain = SequenceSampler(config(data, tasks=(VECTOR,)), text_tokenizer=chars)
    with pytest.raises(ValueError, match="window_steps"):
        plain.load_state_dict(state)
    before = json.loads(json.dumps(plain.state_dict()))  # as written before packing existed
    del before["window_tokens"], before["config"]["window_steps"]
    plain.load_state_dict(before)


def test_window_steps_per_task_or_family(data, chars):
    """task_window_steps overrides window_steps by task name or family; 0 leaves a task's rows
    unpacked; a name that is neither is an error naming it."""
    cfg = config(data, tasks=(VECTOR, TEXT_OBS), seq_len=96, window_steps=1,
                 task_window_steps={"babyai": 0})  # fmt: skip
    sampler = SequenceSampler(cfg, text_tokenizer=chars)
    assert sampler.window_steps == {VECTOR: 1} and sampler.window_tokens == {VECTOR: 7}
    kinds = {sampler.describe_row(0, i)[0].task: len(sampler.describe_row(0, i)) for i in range(40)}
    assert kinds[VECTOR] > 1 and kinds[TEXT_OBS] == 1  # packed, and one plain window
    cfg = config(data, tasks=(VECTOR, TEXT_OBS), task_window_steps={TEXT_OBS: 2})
    sampler = SequenceSampler(cfg, text_tokenizer=chars)
    assert sampler.window_steps == {TEXT_OBS: 2}
    with pytest.raises(ValueError, match=r"names \['dmcx'\]"):
        SequenceSampler(config(data, tasks=(VECTOR,), task_window_steps={"dmcx": 1}))
