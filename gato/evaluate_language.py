"""Vision-language and text evaluation of a checkpoint, with the baselines beside it (issue 14).

    results = evaluate_language(
        "runs/x",                                        # a checkpoint, or a Gato model
        vqa=[(image, "what colour is the cube?", "red", "colour"), ...],   # type optional
        captions=[(image, "a red cube left of a blue ball"), ...],
        documents=held_out_texts, train_documents=train_texts,
    )
    print(format_language_report(results))

Answers and captions are generated greedily through gato.text_generator (the KV cache acting
uses), each image at the size training reads it (gato.images.image_size_for, or `image_size`).
A question is asked as the pair `[image patches, "Q: <question> A:"]`, JAT's OK-VQA text layout;
a caption is sampled after the image's patches alone. Generation stops at end of text (training
ends every text with it, gato/vl/sources.py) or after `max_new_tokens`; the report counts how
many stopped at end of text.

Text: bits per byte of held-out documents (:func:`model_bits_per_byte`), each token scored once
with a full window of context where the document allows (windows of `context_tokens` tokens,
advancing by `stride`, scoring only the tokens not scored before), under the model's full output
distribution (the 33025 ids, as trained). Baselines: the majority answer per question type
(fitted on `train_vqa`, else leave-one-out) and the unigram text model fitted on
`train_documents` (gato.language_metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gato.inputs import GatoInputs
from gato.language_metrics import (
    bits_per_byte,
    caption_scores,
    majority_baseline,
    question_type,
    token_bytes,
    unigram_bits_per_byte,
    vqa_scores,
)
from gato.serialize import document_sequence

QUESTION_PROMPT = "Q: {question} A:"
"""How a question is asked: JAT's ok-vqa text reads "Q: <question> A: <answer>"."""


def question_prompt(question: str) -> str:
    """'Q: <question> A:', or the question as it is if it already reads so."""
    q = question.strip()
    return q if q.startswith("Q:") and q.endswith("A:") else QUESTION_PROMPT.format(question=q)


def window_spans(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, first_scored) of the windows that score tokens 1..n-1 of an n-token document
    once each: windows of `window` tokens advancing by `stride`, each scoring the tokens past the
    previous window's end (so every token after the first window has >= window - stride tokens
    of context)."""
    if not 1 <= stride <= window:
        raise ValueError(f"need 1 <= stride <= window, got stride {stride}, window {window}")
    spans, scored_to, start = [], 1, 0
    while scored_to < n:
        end = min(start + window, n)
        spans.append((start, end, scored_to))
        scored_to, start = end, start + stride
    return spans


@torch.inference_mode()
def document_nll(
    model,
    ids: Sequence[int],
    context_tokens: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
) -> np.ndarray:
    """Negative log-likelihood (nats) of tokens 1..n-1 of a document, (n - 1,), each predicted
    from the tokens before it within its window (see :func:`window_spans`; default window the
    model's block_size, stride half of it). Laid out as training lays out documents."""
    window = int(context_tokens or model.config.block_size)
    stride = int(stride or max(1, window // 2))
    ids = np.asarray(ids, np.int64)
    spans = window_spans(len(ids), window, stride)
    device = model.embed.wte.weight.device
    out = []
    for i in range(0, len(spans), batch_size):
        group = spans[i : i + batch_size]
        inputs = GatoInputs.from_sequences(
            [document_sequence(ids[s:e]) for s, e, _ in group], device=device
        )
        targets, _ = inputs.next_token_targets()
        mask = torch.zeros_like(targets, dtype=torch.bool)  # (B, T): position t predicts t + 1
        for row, (s, e, first) in enumerate(group):
            mask[row, first - 1 - s : e - 1 - s] = True
        logits, _ = model(inputs, targets, mask)  # (M, V) at the scored positions, row-major
        out.append(F.cross_entropy(logits.float(), targets[mask], reduction="none").cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def model_bits_per_byte(
    model, text_tokenizer, documents: Sequence[str], context_tokens=None, stride=None
) -> dict:
    """{'bits_per_byte', 'nll' (nats), 'tokens', 'bytes', 'documents'} of the model over the
    documents: tokens 1..n-1 of each, over the bytes they spell (gato.language_metrics)."""
    nll, tokens, nbytes, used = 0.0, 0, 0, 0
    for doc in documents:
        ids = text_tokenizer.encode(doc)
        if len(ids) < 2:
            continue  # nothing to predict
        nll += float(document_nll(model, ids, context_tokens, stride).sum())
        tokens += len(ids) - 1
        nbytes += int(token_bytes(text_tokenizer, ids, doc)[1:].sum())
        used += 1
    if not nbytes:
        raise ValueError("the documents hold no token to score (each needs at least two)")
    return {
        "bits_per_byte": bits_per_byte(nll, nbytes),
        "nll": nll,
        "tokens": tokens,
        "bytes": nbytes,
        "documents": used,
    }


def generate_text(
    model, text_tokenizer, image, prompt: str, max_new_tokens: int, context_tokens=None
) -> tuple[str, str]:
    """(greedy text after `[image patches, prompt]`, stripped; why it stopped)."""
    from gato.text_generator import TextGenerator, generation_prompt

    gen = TextGenerator(model, text_tokenizer, context_tokens=context_tokens, greedy=True)
    gen.feed(generation_prompt(text_tokenizer, prompt, image))
    ids = list(gen.generate(max_new_tokens))
    return text_tokenizer.decode(ids).strip(), gen.stop_reason


def _image(image, size: int | None) -> np.ndarray:
    """An image (array or file) at the size the model reads it (gato.images.image_size_for)."""
    from gato.images import image_size_for, load_image, resize_and_pad

    array = load_image(image) if isinstance(image, str | Path) else np.asarray(image, np.uint8)
    return resize_and_pad(array, image_size_for(array, size))


def evaluate_language(
    checkpoint,
    vqa: Sequence[tuple] = (),
    captions: Sequence[tuple] = (),
    documents: Sequence[str] = (),
    train_documents: Sequence[str] = (),
    train_vqa: Sequence[tuple] | None = None,
    max_new_tokens: int = 16,
    image_size: int | None = None,
    context_tokens: int | None = None,
    device: str = "cpu",
    text_tokenizer=None,
    samples: int = 5,
) -> dict:
    """Metrics of a checkpoint (a path, or a Gato model) with their baselines.

    vqa: (image, question, answer[, question type]) tuples (image an (H, W, 3) uint8 array or a
    file; answer a str or the annotators' list; type default :func:`question_type`); captions:
    (image, caption or list of captions); documents: held-out texts; train_documents: the
    unigram baseline's train split (none: no unigram row); train_vqa: the majority baseline's
    train split, (image, question, answer[, type]) with the image unused (None: leave-one-out).
    Returns {'vqa': ..., 'captions': ..., 'text': ...} for the parts given, plus 'samples'."""
    if isinstance(checkpoint, str | Path):
        from gato.checkpoint import load_model

        model, _ = load_model(checkpoint, device=device)
    else:
        model = checkpoint.eval()
    if text_tokenizer is None:
        from gato.text import get_text_tokenizer

        text_tokenizer = get_text_tokenizer()
    results: dict = {"samples": []}

    def ask(image, prompt):
        return generate_text(
            model, text_tokenizer, _image(image, image_size), prompt, max_new_tokens, context_tokens
        )

    if vqa:
        types = [row[3] if len(row) > 3 else question_type(row[1]) for row in vqa]
        answers = [row[2] for row in vqa]
        asked = [ask(row[0], question_prompt(row[1])) for row in vqa]
        scores = vqa_scores([p for p, _ in asked], answers, types)
        train_types = (
            [row[3] if len(row) > 3 else question_type(row[1]) for row in train_vqa]
            if train_vqa is not None
            else None
        )
        train_answers = [row[2] for row in train_vqa] if train_vqa is not None else None
        scores["baseline"] = majority_baseline(train_answers, train_types, answers, types)
        scores["ended_at_eos"] = sum(reason == "end of text" for _, reason in asked)
        results["vqa"] = scores
        results["samples"] += [
            {"question": row[1], "answer": row[2], "predicted": p}
            for row, (p, _) in list(zip(vqa, asked, strict=True))[:samples]
        ]
    if captions:
        made = [ask(image, "") for image, _ in captions]
        scores = caption_scores([p for p, _ in made], [c for _, c in captions])
        scores["ended_at_eos"] = sum(reason == "end of text" for _, reason in made)
        results["captions"] = scores
        results["samples"] += [
            {"caption": c, "predicted": p}
            for (_, c), (p, _) in list(zip(captions, made, strict=True))[:samples]
        ]
    if documents:
        text = model_bits_per_byte(model, text_tokenizer, documents, context_tokens)
        if train_documents:
            unigram = unigram_bits_per_byte(text_tokenizer, train_documents, documents)
            text["unigram_bits_per_byte"] = unigram["bits_per_byte"]
        results["text"] = text
    return results


def format_language_report(results: dict) -> str:
    """A markdown table of :func:`evaluate_language`'s results: metric, model, baseline."""
    rows = ["| metric | model | baseline |", "|---|---|---|"]
    if "vqa" in results:
        v, b = results["vqa"], results["vqa"]["baseline"]
        rows.append(
            f"| VQA accuracy ({v['count']} questions) | {v['accuracy']:.3f} | "
            f"{b['accuracy']:.3f} (majority per type) |"
        )
        for t, row in v["per_type"].items():
            rows.append(
                f"| VQA accuracy: {t} ({row['count']}) | {row['accuracy']:.3f} | "
                f"{b['per_type'][t]['accuracy']:.3f} |"
            )
    if "captions" in results:
        c = results["captions"]
        rows.append(f"| caption exact match ({c['count']}) | {c['exact_match']:.3f} | |")
        rows.append(f"| caption token F1 ({c['count']}) | {c['token_f1']:.3f} | |")
    if "text" in results:
        t = results["text"]
        base = t.get("unigram_bits_per_byte")
        rows.append(
            f"| text bits per byte ({t['bytes']} bytes) | {t['bits_per_byte']:.3f} | "
            f"{'' if base is None else f'{base:.3f} (unigram)'} |"
        )
    return "\n".join(rows)
