"""gato.language_metrics and gato.evaluate_language on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from language_fixtures import caption_model
from model_fixtures import debug_model

from gato.evaluate_language import (
    document_nll,
    evaluate_language,
    format_language_report,
    model_bits_per_byte,
    question_prompt,
    window_spans,
)
from gato.inputs import GatoInputs
from gato.language_metrics import (
    UnigramModel,
    bits_per_byte,
    caption_scores,
    exact_match,
    majority_answers,
    majority_baseline,
    normalize_answer,
    question_type,
    token_bytes,
    token_f1,
    unigram_bits_per_byte,
    vqa_accuracy,
    vqa_scores,
)
from gato.serialize import document_sequence
from gato.text import get_text_tokenizer


@pytest.fixture(scope="module")
def tok():
    return get_text_tokenizer()


def test_normalization_exact_match_and_f1():
    assert normalize_answer("  The Red-Cube, an apple!  ") == "redcube apple"
    assert exact_match("The red cube.", "red cube") == 1.0
    assert exact_match("red cubes", ["blue", "red cube"]) == 0.0
    assert exact_match("Blue", ["red", "blue"]) == 1.0
    # "a big red cube" -> [big, red, cube]; "small red cube" -> [small, red, cube]: 2 common,
    # precision 2/3, recall 2/3, F1 2/3
    assert token_f1("a big red cube", ["small red cube"]) == pytest.approx(2 / 3)
    assert token_f1("red red", "red") == pytest.approx(2 * 0.5 * 1 / 1.5)  # multiplicity
    assert token_f1("red cube", ["green", "the red cube"]) == 1.0  # best reference
    assert token_f1("", "") == 1.0 and token_f1("the", "red") == 0.0
    scores = caption_scores(["a red cube", "two balls"], ["red cube", "three blue balls"])
    assert scores["exact_match"] == 0.5
    assert scores["token_f1"] == pytest.approx((1.0 + 2 * 0.5 * (1 / 3) / (0.5 + 1 / 3)) / 2)
    with pytest.raises(ValueError, match="2 predictions but 1"):
        caption_scores(["a", "b"], ["a"])


def test_vqa_accuracy_per_type():
    assert vqa_accuracy("Red", "red") == 1.0
    # 10 annotators, 2 said "red": leave-one-out over the 2 matching (1/3 each) and the 8 others
    # (2/3 each): (2 * 1/3 + 8 * 2/3) / 10 = 0.6
    annotators = ["red"] * 2 + ["crimson"] * 8
    assert vqa_accuracy("red", annotators) == pytest.approx(0.6)
    assert vqa_accuracy("red", ["red"] * 4 + ["pink"] * 6) == 1.0
    preds = ["red", "blue", "3", "2", "left"]
    answers = ["red", "green", "3", "3", "left"]
    types = ["colour", "colour", "count", "count", "position"]
    s = vqa_scores(preds, answers, types)
    assert s["accuracy"] == pytest.approx(3 / 5) and s["count"] == 5
    assert s["per_type"] == {
        "colour": {"accuracy": 0.5, "count": 2},
        "count": {"accuracy": 0.5, "count": 2},
        "position": {"accuracy": 1.0, "count": 1},
    }
    assert s["mean_per_type"] == pytest.approx(2 / 3)


def test_majority_baseline():
    train_answers = ["red", "red", "blue", "2", "3", "3", ["left", "left", "right"]]
    train_types = ["colour", "colour", "colour", "count", "count", "count", "position"]
    # overall: red 2, 3 2, left 2 (ties go to the alphabetically first: "3")
    assert majority_answers(train_answers, train_types) == {
        "": "3",
        "colour": "red",
        "count": "3",
        "position": "left",
    }
    test_answers = ["red", "blue", "3", "left", "large"]
    test_types = ["colour", "colour", "count", "position", "size"]  # size: unseen in train
    s = majority_baseline(train_answers, train_types, test_answers, test_types)
    # guesses: red, red, 3, left, 3 (overall majority) -> right, wrong, right, right, wrong
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["per_type"]["size"]["accuracy"] == 0.0
    # leave-one-out: each question gets the majority of the others of its type
    loo = majority_baseline(None, None, ["red", "red", "blue"], ["c", "c", "c"])
    # q0 sees [red, blue] -> blue (tie, alphabetical); q1 the same; q2 sees [red, red] -> red
    assert loo["accuracy"] == 0.0


def test_question_type():
    assert question_type("Q: How many cubes are there?") == "how many"
    assert question_type("What colour is the ball?") == "what color"
    assert question_type("Is the cube red?") == "yes/no"
    assert question_type("Where is the ball?") == "where"
    assert question_type("Name the shape") == "other"


def test_token_bytes_and_unigram(tok):
    text = "The cat sat."
    ids = tok.encode(text)
    counts = token_bytes(tok, ids, text)
    assert counts.tolist() == [3, 4, 4, 1]  # "The" (dummy space removed), " cat", " sat", "."
    multi = "naïve café 東京 🙂"
    assert token_bytes(tok, tok.encode(multi), multi).sum() == len(multi.encode())
    with pytest.raises(ValueError, match="not the encoding"):
        token_bytes(tok, ids, "The cat")
    unigram = UnigramModel.fit([[0, 1, 1], [1]], vocab_size=4)  # counts 1, 3, 0, 0; N=4
    assert np.allclose(unigram.nll([1, 2]), [-math.log(4 / 8), -math.log(1 / 8)])
    train = ["the cat sat on the mat", "the dog sat"]
    result = unigram_bits_per_byte(tok, train, [text])
    fitted = UnigramModel.fit([tok.encode(t) for t in train])
    want = fitted.nll(ids[1:]).sum() / math.log(2) / 9  # " cat sat." is 9 bytes
    assert result == {"bits_per_byte": pytest.approx(want), "tokens": 3, "bytes": 9}
    assert bits_per_byte(math.log(2) * 18, 9) == pytest.approx(2.0)


def test_window_spans():
    # 20 tokens, window 8, stride 4: tokens 1..7 in [0, 8), 8..11 in [4, 12), ... 16..19
    assert window_spans(20, 8, 4) == [(0, 8, 1), (4, 12, 8), (8, 16, 12), (12, 20, 16)]
    assert window_spans(5, 8, 4) == [(0, 5, 1)]
    assert window_spans(1, 8, 4) == []
    scored = [p for s, e, f in window_spans(37, 10, 3) for p in range(f, e)]
    assert scored == list(range(1, 37))  # every token but the first, once


def hand_nll(model, ids, window):
    """-log p(token p | its window's tokens before it), one full forward per token."""
    out = []
    for s, e, first in window_spans(len(ids), window, max(1, window // 2)):
        for p in range(first, e):
            with torch.no_grad():
                logits, _ = model(GatoInputs.from_sequences([document_sequence(ids[s:p])]))
            out.append(-torch.log_softmax(logits[0, -1].double(), -1)[ids[p]].item())
    return np.array(out)


def test_bits_per_byte_by_hand(tok):
    model = debug_model(0)
    text = "The cat sat."
    ids = tok.encode(text)
    nll = document_nll(model, ids)
    assert np.allclose(nll, hand_nll(model, ids, 512), atol=1e-4)
    result = model_bits_per_byte(model, tok, [text])
    assert result["tokens"] == 3 and result["bytes"] == 9
    assert result["bits_per_byte"] == pytest.approx(nll.sum() / math.log(2) / 9, rel=1e-6)
    # a random model is near uniform over 33025 ids: log2(33025) bits per token, 3 tokens, 9 B
    assert result["bits_per_byte"] == pytest.approx(math.log2(33025) * 3 / 9, rel=0.05)
    long = tok.encode("one two three four five six seven eight nine ten eleven twelve " * 2)
    windowed = document_nll(model, long, context_tokens=8, batch_size=3)
    assert windowed.shape == (len(long) - 1,)
    assert np.allclose(windowed, hand_nll(model, long, 8), atol=1e-4)


def test_evaluate_language(tok):
    model = debug_model(0)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(3)]
    vqa = [
        (images[0], "what colour is the cube?", "red", "colour"),
        (images[1], "what colour is the ball?", "red", "colour"),
        (images[2], "Q: how many cubes? A:", "2"),  # already a prompt: asked as it is
    ]
    results = evaluate_language(
        model,
        vqa=vqa,
        captions=[(images[0], "a red cube"), (images[1], ["a red ball", "red ball"])],
        documents=["The cat sat.", "A dog ran home."],
        train_documents=["the cat sat on the mat"],
        max_new_tokens=3,
        image_size=32,
        text_tokenizer=tok,
    )
    assert results["vqa"]["count"] == 3 and set(results["vqa"]["per_type"]) == {
        "colour",
        "how many",
    }
    # leave-one-out majority: the two colour questions answer each other's "red"
    assert results["vqa"]["baseline"]["per_type"]["colour"]["accuracy"] == 1.0
    assert results["captions"]["count"] == 2
    assert len(results["samples"]) == 5
    text = results["text"]
    assert text["documents"] == 2 and text["unigram_bits_per_byte"] > 0
    assert question_prompt("what is it? ") == "Q: what is it? A:"
    assert question_prompt("Q: what is it? A:") == "Q: what is it? A:"
    report = format_language_report(results)
    assert "VQA accuracy (3 questions)" in report and "(unigram)" in report


def test_evaluate_language_on_a_trained_captioner(tok):
    """A model that memorised two captions scores exact match 1 on them, every caption ending
    at end of text; a caption that is not the image's scores what it overlaps."""
    model, images, captions = caption_model(tok)
    right = evaluate_language(
        model, captions=list(zip(images, captions, strict=True)), image_size=32, text_tokenizer=tok
    )["captions"]
    assert right == {"exact_match": 1.0, "token_f1": 1.0, "count": 2, "ended_at_eos": 2}
    swapped = list(zip(images, captions[::-1], strict=True))
    wrong = evaluate_language(model, captions=swapped, image_size=32, text_tokenizer=tok)
    assert wrong["captions"]["exact_match"] == 0.0
    # "red cube" vs "two blue balls on left": nothing in common
    assert wrong["captions"]["token_f1"] == 0.0
