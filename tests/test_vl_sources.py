"""Vision-language and text sources: the hub schema on local files, user folders, the five-pair
layout and its loss mask, cropping to L, text windows, held-out splits and the mixture weights.
Nothing is downloaded: the hub path is exercised with datasets.load_dataset replaced."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gato.config import get_config
from gato.data import FAMILY_WEIGHTS, DataConfig, SequenceSampler
from gato.jat import HUB_REPO, encode_png
from gato.layout_check import LayoutError, PairLayout, check_tasks_fit, layouts_from_sources
from gato.sequence import Kind
from gato.text import get_text_tokenizer
from gato.vl import hub, scenes
from gato.vl.images import fit_image
from gato.vl.sources import END_OF_TEXT_ID, PairSource, ScenePool, StoredPool
from gato.vl.tasks import load_language_source
from gato.vl.text_corpus import text_documents


@pytest.fixture(scope="module")
def tok():
    return get_text_tokenizer()


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ hub schema


def test_pairs_parquet_has_the_hub_features_and_reads_back(tmp_path):
    import datasets

    pairs = [(_photo(48, 80, i), f"Q: what is {i}? A: {i}") for i in range(5)]
    path = hub.write_pairs_parquet(tmp_path / "ok-vqa", pairs, split="train")
    assert path.name == "train-00000-of-00001.parquet"
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", streaming=True)
    assert ds.features == hub.pair_features()  # {"images": Image(), "text": Value("string")}
    first = next(iter(ds))
    assert np.array_equal(np.asarray(first["images"]), pairs[0][0])  # decoded by datasets
    rows = list(hub.load_hub_pairs("ok-vqa", "train", local_path=tmp_path / "ok-vqa"))
    assert [t for _, t in rows] == [t for _, t in pairs]
    assert all(
        np.array_equal(fit_image(img, (48, 80)), p)
        for (img, _), (p, _) in zip(rows, pairs, strict=True)
    )
    assert len(list(hub.load_hub_pairs("ok-vqa", local_path=path, max_rows=2))) == 2


def test_save_to_disk_and_text_rows(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict(
        {"images": [{"bytes": encode_png(_photo(32, 32, 0)), "path": None}], "text": ["a cat"]},
        features=hub.pair_features(),
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    ((image, text),) = hub.load_hub_pairs("conceptual-captions", local_path=tmp_path / "saved")
    assert text == "a cat" and fit_image(image, 32).shape == (32, 32, 3)
    docs = ["First article.", "Second one, longer."]
    hub.write_texts_parquet(tmp_path / "wiki", docs)
    assert list(hub.load_hub_texts("wikipedia", local_path=tmp_path / "wiki")) == docs
    hub.write_texts_parquet(tmp_path / "wrong", docs)
    with pytest.raises(ValueError, match="expected columns"):
        list(hub.load_hub_pairs("ok-vqa", local_path=tmp_path / "wrong"))


def test_the_hub_is_streamed_by_config_name(tmp_path, monkeypatch):
    import datasets

    hub.write_texts_parquet(tmp_path / "oscar", [f"doc {i}" for i in range(10)])
    local = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "oscar" / "train-00000-of-00001.parquet"),
        split="train", streaming=True,
    )  # fmt: skip
    calls = []

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        return local

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert list(hub.load_hub_texts("oscar", max_rows=3)) == ["doc 0", "doc 1", "doc 2"]
    ((args, kwargs),) = calls
    assert args == (HUB_REPO, "oscar") and kwargs["streaming"] is True
    assert kwargs["split"] == "train"
    with pytest.raises(ValueError, match="unknown hub config"):
        list(hub.load_hub_texts("c4"))


# --------------------------------------------------------------------- five-pair layout


def test_a_row_is_five_pairs_with_loss_on_text_only(tok):
    source = PairSource("vl.scenes", ScenePool("train"), tok)
    key = 12345
    chosen = source.examples(key)
    assert len(chosen) == 5 and chosen == source.examples(key)
    seq = source.pairs(key).validate()
    assert len(seq) == source.num_tokens(key)
    assert seq.num_patches == 5 * 16
    starts = seq.timestep_starts()
    assert list(seq.timesteps[starts]) == [0, 1, 2, 3, 4]
    bounds = [*starts, len(seq)]
    for j, i in enumerate(chosen):
        part = seq.window(bounds[j], bounds[j + 1])
        assert list(part.kinds[:16]) == [Kind.IMAGE] * 16
        assert (part.kinds[16:] == Kind.TEXT).all()
        assert np.array_equal(part.loss_mask, part.kinds == Kind.TEXT)
        assert np.array_equal(part.local_positions, np.arange(len(part)))
        assert tok.decode(part.tokens[16:-1]) == source.pool.text(i)
        assert part.tokens[-1] == END_OF_TEXT_ID == tok._sp.eos_id() and part.loss_mask[-1]
        image = scenes.Scene.from_id(source.pool.ids[i]).render()
        assert np.allclose(part.patches[0], (image[:16, :16] / 255.0 * 2 - 1) / 4, atol=1e-6)


def test_rows_are_cropped_to_L_at_random_offsets_or_padded(tmp_path):
    short = SequenceSampler(DataConfig(data_dir=str(tmp_path), tasks=("vl.scenes",), seq_len=64))
    source = short.sources[0]
    starts = set()
    for i in range(20):
        plan = short.describe(0, i)
        whole = source.pairs(plan.episode)
        assert len(whole) > 64 and plan.length == 64  # cropped, never clamped
        row = short.sequence(plan)
        assert np.array_equal(row.tokens, whole.tokens[plan.start : plan.start + 64])
        window = whole.window(plan.start, plan.start + 64)
        assert np.array_equal(row.patches, window.patches)
        starts.add(plan.start)
    assert len(starts) > 5
    long = SequenceSampler(DataConfig(data_dir=str(tmp_path), tasks=("vl.scenes",), seq_len=512))
    batch = long.rows(0, range(4)).batch
    plan = long.describe(0, 0)
    assert plan.start == 0 and plan.length == long.sources[0].num_tokens(plan.episode) < 512
    assert (batch.kinds[0, plan.length :] == Kind.PAD).all()
    assert not batch.loss_mask[0, plan.length :].any()


def test_layout_check_refuses_pairs_longer_than_the_local_positions(tok):
    source = PairSource("vl.scenes", ScenePool("val"), tok)
    layouts = layouts_from_sources([source])
    assert layouts == [PairLayout("vl.scenes", source.longest_pair(), 16)]
    check_tasks_fit(layouts, get_config("debug"), context_tokens=64)  # longer rows: cropped
    long_text = StoredPool([(_photo(16, 16, 0), "word " * 300)], image_size=128)
    with pytest.raises(LayoutError, match="pairs of .* tokens .*64 image patches"):
        check_tasks_fit(
            layouts_from_sources([PairSource("vl.x", long_text, tok)]), get_config("debug")
        )


# ------------------------------------------------------------------------ text and splits


def test_text_windows_are_all_targets_and_the_test_split_is_held_out(tmp_path, tok):
    test, train = text_documents("test"), text_documents("train")
    assert len(test) == 18 and len(train) == 171 and not set(test) & set(train)
    sampler = SequenceSampler(
        DataConfig(data_dir=str(tmp_path), tasks=("text.corpus",), seq_len=96)
    )
    val = SequenceSampler(
        DataConfig(data_dir=str(tmp_path), tasks=("text.corpus",), seq_len=96), "val"
    )
    assert len(sampler.sources[0]) == 170 and len(val.sources[0]) == 1
    ids = [np.append(tok.encode(d), END_OF_TEXT_ID) for d in train]  # each ends with </s>
    for i in range(10):
        plan = sampler.describe(3, i)
        row = sampler.sequence(plan)
        assert len(row) == 96 and row.loss_mask.all() and (row.kinds == Kind.TEXT).all()
        assert np.array_equal(row.tokens, ids[plan.episode][plan.start : plan.start + 96])
    assert text_documents("test") == [r for r in test]
    with pytest.raises(ValueError, match="split"):
        text_documents("val")


def test_scene_sources_never_draw_test_ids(tok):
    train = PairSource("vl.scenes", ScenePool("train"), tok)
    val = PairSource("vl.scenes", ScenePool("val"), tok)
    test_ids = scenes.split_ids("test")
    for key in range(200):
        for source in (train, val):
            ids = [source.pool.ids[i] for i in source.examples(key)]
            assert not any(i in test_ids for i in ids)
    assert scenes.split_ids("train").start >= scenes.split_ids("val").stop


# --------------------------------------------------------------------------- user folders


def test_user_image_folder_jsonl_and_csv(tmp_path, tok):
    folder = tmp_path / "vl.mine"
    folder.mkdir()
    from PIL import Image

    for i in range(4):
        Image.fromarray(_photo(40, 100, i)).save(folder / f"img{i}.png")
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(4):
            f.write(json.dumps({"file_name": f"img{i}.png", "text": f"picture {i}"}) + "\n")
    source = load_language_source("vl.mine", tmp_path, "train", 1, tok)
    assert len(source) == 3 and source.pool.image_size == 128  # one held out for validation
    assert source.pool.image(0).shape == (128, 128, 3)
    assert source.pool.image(0)[:38].max() == 0  # 40x100 fitted to 51x128, padded above
    assert load_language_source("vl.mine", tmp_path, "val", 1, tok).pool.text(0) == "picture 3"
    seq = source.pairs(7)
    assert seq.num_patches == 5 * 64 and len(seq) == source.num_tokens(7)

    other = tmp_path / "vl.csv"
    other.mkdir()
    Image.fromarray(_photo(16, 16, 9)).save(other / "a.jpg")
    (other / "captions.csv").write_text('file_name,text\na.jpg,"a photo, with a comma"\n')
    assert load_language_source("vl.csv", tmp_path, "train", 1, tok).pool.text(0) == (
        "a photo, with a comma"
    )
    (other / "captions.csv").write_text("file_name,text\nmissing.jpg,x\n")
    load_language_source.__globals__["_pair_examples"].cache_clear()
    with pytest.raises(FileNotFoundError, match=r"captions.csv:2: image .*missing.jpg"):
        load_language_source("vl.csv", tmp_path, "train", 1, tok)


def test_user_text_folder_and_hub_folder_in_the_mixture(tmp_path, tok):
    (tmp_path / "text.books" / "sub").mkdir(parents=True)
    (tmp_path / "text.books" / "a.txt").write_text("Call me Ishmael. " * 50)
    (tmp_path / "text.books" / "sub" / "b.txt").write_text("It was a dark and stormy night.")
    hub.write_pairs_parquet(
        tmp_path / "vl.ok-vqa", [(_photo(64, 48, i), f"Q: q{i}? A: a{i}") for i in range(3)]
    )
    config = DataConfig(
        data_dir=str(tmp_path), tasks=("text.books", "vl.ok-vqa", "vl.scenes"), seq_len=128
    )
    sampler = SequenceSampler(config)
    assert [len(s) for s in sampler.sources[:2]] == [1, 2]
    batch = sampler.rows(0, range(12))
    assert set(batch.domains) <= {"text", "vl"} and batch.batch.shape == (12, 128)
    json.dumps(sampler.state_dict())
    with pytest.raises(ValueError, match="unknown vl task 'vl.nope'"):
        SequenceSampler(DataConfig(data_dir=str(tmp_path), tasks=("vl.nope",)))


# ---------------------------------------------------------------------------- the mixture


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    from gato.collect import collect_task
    from gato.envs import get_task

    root = tmp_path_factory.mktemp("data")
    collect_task(get_task("cartpole.balance"), 3, data_dir=root, workers=1, random_episodes=1,
                 progress=False, max_steps=50)  # fmt: skip
    return root


def test_mixture_weights_by_family(cartpole):
    base = dict(data_dir=str(cartpole), seq_len=256)
    tasks = ("cartpole.balance", "vl.scenes", "text.corpus")
    sampler = SequenceSampler(DataConfig(**base, tasks=tasks))
    expected = np.array([FAMILY_WEIGHTS["dmc"], 8.0, 6.7])
    assert FAMILY_WEIGHTS["vl"] + FAMILY_WEIGHTS["text"] == pytest.approx(14.7)
    assert np.allclose(sampler.weights, expected / expected.sum())
    counts = {t: 0 for t in tasks}
    for i in range(600):
        counts[sampler.describe(0, i).task] += 1
    shares = np.array([counts[t] for t in tasks]) / 600
    assert np.allclose(shares, sampler.weights, atol=0.07), shares
    weighted = SequenceSampler(DataConfig(**base, tasks=tasks, task_weights={"vl": 2, "text": 0}))
    assert weighted.tasks == ["cartpole.balance", "vl.scenes"]
    assert np.allclose(weighted.weights, np.array([4.62, 2.0]) / 6.62)
