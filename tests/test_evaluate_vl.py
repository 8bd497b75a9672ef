"""Vision-language and text metrics in `python -m gato.evaluate` (gato/evaluate_vl.py, issue 14):
the held-out scenes and corpus, the baselines, the report's rows, and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import debug_model
from test_deploy import write_checkpoint

import gato.evaluate_language as evaluate_language
from gato import evaluate_vl
from gato.errors import UserError
from gato.evaluate import main
from gato.evaluate_report import markdown_report, plot_report
from gato.language_metrics import majority_answers
from gato.text import get_text_tokenizer
from gato.vl.scenes import scene_examples
from gato.vl.text_corpus import text_documents

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tok():
    return get_text_tokenizer()


def test_split_tasks_and_argument_checks():
    control, language = evaluate_vl.split_tasks(
        ["cartpole.balance", " vl.scenes", "text.corpus", "", "vl.ok-vqa", "babyai.open", "text"]
    )
    assert control == ["cartpole.balance", "babyai.open"]
    assert language == ["vl.scenes", "text.corpus", "vl.ok-vqa", "text"]  # text: --text-files
    evaluate_vl.check_language_args(200, None)
    evaluate_vl.check_language_args(1, 18)
    with pytest.raises(UserError, match=r"--vl-examples must be in \[1, 100000\], got 0"):
        evaluate_vl.check_language_args(0, None)
    with pytest.raises(UserError, match=r"--text-documents must be in \[1, 18\].*got 19"):
        evaluate_vl.check_language_args(5, 19)


def test_majority_caption():
    assert evaluate_vl.majority_caption(["b", "a", "b", "a", "c"]) == "a"  # tie: alphabetical
    assert evaluate_vl.majority_caption(["x", "y", "y"]) == "y"
    with pytest.raises(ValueError, match="no captions"):
        evaluate_vl.majority_caption([])


def test_an_oracle_scores_one_and_the_baselines_are_fitted_on_train(tok, monkeypatch):
    """A generator that knows every held-out answer scores 1 on every metric; the baselines are
    the train split's commonest caption and majority answers; samples carry their scene ids."""
    examples = scene_examples("test", 30)
    truth = {(e.image.tobytes(), e.prompt): e.answer for e in examples}

    def oracle(model, text_tokenizer, image, prompt, max_new_tokens, context_tokens=None):
        return truth[(image.tobytes(), prompt)], "end of text"

    monkeypatch.setattr(evaluate_language, "generate_text", oracle)
    results = evaluate_vl.evaluate_language_tasks(
        debug_model(0), ["vl.scenes"], vl_examples=30, text_tokenizer=tok
    )
    assert "text" not in results and results["tasks"] == ["vl.scenes"]
    captions = [e for e in examples if e.qtype == "caption"]
    questions = [e for e in examples if e.qtype != "caption"]
    assert results["captions"]["count"] == len(captions) > 5
    assert results["vqa"]["count"] == len(questions) > 5
    assert results["captions"]["exact_match"] == 1.0 and results["captions"]["token_f1"] == 1.0
    assert results["vqa"]["accuracy"] == 1.0
    assert set(results["vqa"]["per_type"]) == {e.qtype for e in questions}
    assert all(row["accuracy"] == 1.0 for row in results["vqa"]["per_type"].values())
    # Baselines from the train split (ids >= 1,000,000), not from the evaluated questions.
    train = scene_examples("train", evaluate_vl.BASELINE_EXAMPLES, seed=0)
    best = majority_answers(
        [e.answer for e in train if e.qtype != "caption"],
        [e.qtype for e in train if e.qtype != "caption"],
    )
    base = results["vqa"]["baseline"]
    for t, row in base["per_type"].items():
        want = np.mean([e.answer == best[t] for e in questions if e.qtype == t])
        assert row["accuracy"] == pytest.approx(want), t
    assert base["accuracy"] < 1.0
    caption_base = results["captions"]["baseline"]
    assert caption_base["caption"] == evaluate_vl.majority_caption(
        [e.answer for e in train if e.qtype == "caption"]
    )
    assert caption_base["exact_match"] == 0.0 and 0.0 < caption_base["token_f1"] < 1.0
    by_id = {e.scene_id: e for e in examples}
    assert len(results["samples"]) == 2 * evaluate_vl.SAMPLES
    for s in results["samples"]:
        assert s["predicted"] == by_id[s["scene_id"]].answer


def test_language_metrics_of_a_model_and_the_report(tok, tmp_path):
    results = evaluate_vl.evaluate_language_tasks(
        debug_model(0),
        ["vl.scenes", "text.corpus"],
        vl_examples=6,
        text_documents=2,
        max_new_tokens=3,
        text_tokenizer=tok,
    )
    assert results["captions"]["count"] + results["vqa"]["count"] == 6
    text = results["text"]
    assert text["documents"] == 2
    assert text["bytes"] < sum(len(d.encode()) for d in text_documents("test")[:2])
    # An untrained model spreads its mass over 33025 ids: worse than the unigram baseline.
    assert text["bits_per_byte"] > text["unigram_bits_per_byte"] > 0
    assert len(text["samples"]) == 2
    assert text_documents("test")[0].startswith(text["samples"][0]["prompt"])
    report = {"checkpoint": "runs/x/checkpoints/step_1", "tasks": [], "language": results}
    md = markdown_report(report)
    assert "## Vision-language and text" in md and "| text bits per byte (2 documents" in md
    assert "(commonest train caption)" in md and "(majority answer per type)" in md
    assert "(unigram)" in md and "rollouts per task" not in md
    assert plot_report(report, tmp_path / "eval.png").read_bytes()[:8] == PNG


def test_evaluate_command_language_only(tmp_path, capsys):
    """A checkpoint recording only vl.* and text.* tasks: no rollouts, no data folder needed."""
    write_checkpoint(tmp_path / "run", tasks=["vl.scenes", "text.corpus"])
    argv = ["--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "eval")]
    argv += ["--vl-examples", "4", "--text-documents", "1", "--vl-max-new-tokens", "2"]
    report = main(argv + ["--no-progress"])
    assert report["tasks"] == [] and report["rollouts"] == []
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    lang = saved["language"]
    assert lang["tasks"] == ["vl.scenes", "text.corpus"]
    assert lang["captions"]["count"] + lang["vqa"]["count"] == 4
    assert lang["text"]["documents"] == 1 and lang["max_new_tokens"] == 2
    md = (tmp_path / "eval" / "eval.md").read_text()
    assert "| VQA accuracy (" in md and "| caption token F1 (" in md
    assert (tmp_path / "eval" / "eval.png").read_bytes()[:8] == PNG
    assert "## Vision-language and text" in capsys.readouterr().out
    with pytest.raises(UserError, match="--text-documents"):
        main(argv[:4] + ["--text-documents", "40"])


@pytest.mark.slow  # trains a debug Gato 3 steps, then rolls out and generates
def test_train_then_evaluate_control_vl_and_text(tmp_path):
    """gato.train on cartpole, scenes and the corpus, then gato.evaluate on the checkpoint's own
    task list: the control rows and the language rows in one report."""
    from gato.collect import collect_task
    from gato.envs import get_task
    from gato.train import main as train
    from gato.train_log import read_metrics

    data = tmp_path / "data"
    collect_task(get_task("cartpole.balance"), 3, data_dir=data, workers=1, random_episodes=1,
                 progress=False, max_steps=60)  # fmt: skip
    run = tmp_path / "run"
    train([
        "--size", "debug", "--seq-len", "192", "--batch-size", "6", "--steps", "3",
        "--log-every", "1", "--eval-every", "3", "--eval-batches", "1", "--ckpt-every", "3",
        "--num-workers", "0", "--data-dir", str(data), "--run-dir", str(run),
        "--tasks", "cartpole.balance,vl.scenes,text.corpus",
        "--task-weights", "dmc=1,vl=1,text=1",
    ])  # fmt: skip
    report = main([
        "--checkpoint", str(run), "--data-dir", str(data), "--out", str(tmp_path / "eval"),
        "--episodes", "2", "--workers", "1", "--num-envs", "2", "--max-steps", "5",
        "--demos", "1", "--vl-examples", "6", "--text-documents", "1",
        "--vl-max-new-tokens", "4", "--no-progress",
    ])  # fmt: skip
    # The mixture trained end to end with a loss per domain (these were tests/test_vl_train.py).
    rows = read_metrics(run)
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 3 and all(8.0 < x < 12.0 for x in losses), losses
    logged = {k for r in rows for k in r}
    assert {"val_loss/vl", "val_loss/text", "val_loss/dmc", "loss/vl"} <= logged, sorted(logged)
    assert [r["task"] for r in report["tasks"]] == ["cartpole.balance"]
    assert report["tasks"][0]["normalized_score"] is not None
    lang = report["language"]
    assert sorted(lang["tasks"]) == ["text.corpus", "vl.scenes"]  # the checkpoint's own list
    assert {"captions", "vqa", "text"} <= set(lang)
    md = (tmp_path / "eval" / "eval.md").read_text()
    assert "| cartpole.balance | dmc | 2 |" in md and "## Vision-language and text" in md
