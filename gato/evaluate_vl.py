"""Vision-language and text metrics of `python -m gato.evaluate`, beside their baselines (issue 14).

When the evaluated task list (--tasks, or the tasks the checkpoint records) holds ``vl.*`` tasks,
the checkpoint is given the first --vl-examples scenes of the held-out test split (scene ids
[0, 100000), never trained on; gato/vl/scenes.py), each as training mixes them: about half are
captions (the image alone), the rest questions of five types (count, colour, shape, position,
size) asked as ``[image patches, "Q: ... A:"]``. With ``text.*`` tasks it scores the shipped
corpus's held-out documents (--text-documents of the 18; gato/vl/text_corpus.py). Reported
(gato/evaluate_language.py, gato/language_metrics.py), each beside its baseline:

- caption exact match and token F1 -- baseline: the commonest caption of the train split's
  scenes, given for every image;
- VQA accuracy, overall and per question type -- baseline: the majority answer of each question
  type over the train split's questions;
- text bits per byte -- baseline: the add-one unigram model fitted on the corpus's train split.

Baselines are fitted on BASELINE_EXAMPLES train-split scenes (ids >= 1,000,000, drawn with seed
0) and the 171 train documents. Captions and answers are greedy, at most --vl-max-new-tokens
tokens (default 48: the longest test caption is 39 tokens, then end of text). A few samples are
kept with their scene ids (captions, answers), and two greedy continuations of held-out
documents show what text the model writes.

[decision] Every ``vl.*`` task (a hub config, a user folder) is scored on the generated scenes and
every ``text.*`` task on the shipped corpus: those held-out splits are fixed and never trained on,
while the hub and folder sources have no test split here. A checkpoint trained on --text-files
records the task ``text``: it is scored on the corpus too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from gato.errors import UserError

BASELINE_EXAMPLES = 4000
SAMPLES = 8  # generated captions and answers kept in the report
CONTINUATIONS = 2  # held-out documents continued in the report
CONTINUATION_PROMPT_CHARS = 160  # of each document, cut back to a word boundary
TEXT_FILES_TASK = "text"  # gato.data's task name of --text-files documents


def is_text_task(name: str) -> bool:
    """A text.* task, or 'text': the --text-files documents, as gato.train records them."""
    return name == TEXT_FILES_TASK or name.startswith("text.")


def split_tasks(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(control tasks, vl.*, text.* and 'text' tasks), each in the given order."""
    from gato.vl.tasks import is_language_task

    names = [n.strip() for n in names if n.strip()]
    language = [n for n in names if is_language_task(n) or is_text_task(n)]
    return [n for n in names if n not in language], language


def check_language_args(vl_examples: int, text_documents: int | None) -> None:
    """UserError for a number of examples or documents the held-out splits do not have."""
    from gato.vl.scenes import split_ids
    from gato.vl.text_corpus import text_documents as corpus

    if not 1 <= vl_examples <= len(split_ids("test")):
        raise UserError(
            f"--vl-examples must be in [1, {len(split_ids('test'))}], got {vl_examples}"
        )
    have = len(corpus("test"))
    if text_documents is not None and not 1 <= text_documents <= have:
        raise UserError(
            f"--text-documents must be in [1, {have}] (the corpus's test split), got "
            f"{text_documents}"
        )


def majority_caption(captions: Sequence[str]) -> str:
    """The commonest caption (ties: the alphabetically first)."""
    if not captions:
        raise ValueError("no captions to choose from")
    return min(Counter(captions).items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _continuation_prompt(document: str) -> str:
    head = document[:CONTINUATION_PROMPT_CHARS]
    return head.rsplit(" ", 1)[0] if " " in head and len(document) > len(head) else head


def evaluate_language_tasks(
    checkpoint,
    tasks: Sequence[str],
    vl_examples: int = 200,
    text_documents: int | None = None,
    max_new_tokens: int = 48,
    context_tokens: int | None = None,
    device: str = "cpu",
    threads: int | None = None,
    text_tokenizer=None,
) -> dict:
    """The metrics of `checkpoint` (a path or a Gato model) for the language tasks `tasks`
    (module docstring): gato.evaluate_language.evaluate_language's results plus the caption
    baseline, the scene ids of the samples, text continuations, 'tasks', 'data', 'seconds'."""
    import torch

    from gato.evaluate_language import evaluate_language, generate_text
    from gato.language_metrics import caption_scores
    from gato.vl.scenes import scene_examples
    from gato.vl.tasks import VL_PREFIX
    from gato.vl.text_corpus import text_documents as corpus

    start, before = time.time(), torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        if text_tokenizer is None:
            from gato.text import get_text_tokenizer

            text_tokenizer = get_text_tokenizer()
        if not isinstance(checkpoint, torch.nn.Module):
            from gato.checkpoint import load_model

            checkpoint, _ = load_model(checkpoint, device=device)
        model = checkpoint.eval()
        has_vl = any(t.startswith(VL_PREFIX) for t in tasks)
        has_text = any(is_text_task(t) for t in tasks)
        data: dict = {}
        caps, questions, train = [], [], []
        if has_vl:
            examples = scene_examples("test", vl_examples)
            caps = [e for e in examples if e.qtype == "caption"]
            questions = [e for e in examples if e.qtype != "caption"]
            train = scene_examples("train", BASELINE_EXAMPLES, seed=0)
            data["vl"] = (
                f"generated scenes, test ids 0-{vl_examples - 1}: {len(caps)} captions, "
                f"{len(questions)} questions; baselines fitted on {len(train)} train scenes"
            )
        documents, train_documents = [], []
        if has_text:
            documents = corpus("test")[:text_documents]
            train_documents = corpus("train")
            data["text"] = (
                f"the shipped corpus: {len(documents)} held-out documents; unigram fitted on "
                f"{len(train_documents)} train documents"
            )
        results = evaluate_language(
            model,
            vqa=[(e.image, e.prompt, e.answer, e.qtype) for e in questions],
            captions=[(e.image, e.answer) for e in caps],
            documents=documents,
            train_documents=train_documents,
            train_vqa=[(None, e.prompt, e.answer, e.qtype) for e in train if e.qtype != "caption"],
            max_new_tokens=max_new_tokens,
            context_tokens=context_tokens,
            text_tokenizer=text_tokenizer,
            samples=SAMPLES,
        )
        if caps:
            best = majority_caption([e.answer for e in train if e.qtype == "caption"])
            base = caption_scores([best] * len(caps), [e.answer for e in caps])
            results["captions"]["baseline"] = {**base, "caption": best}
        asked = iter(questions)
        captioned = iter(caps)
        for sample in results["samples"]:
            source = asked if "question" in sample else captioned
            sample["scene_id"] = next(source).scene_id
        if documents:
            results["text"]["samples"] = []
            for doc in documents[:CONTINUATIONS]:
                prompt = _continuation_prompt(doc)
                text, reason = generate_text(
                    model, text_tokenizer, None, prompt, max_new_tokens, context_tokens
                )
                results["text"]["samples"].append(
                    {"prompt": prompt, "generated": text, "stopped": reason}
                )
    finally:
        torch.set_num_threads(before)
    results.update(
        tasks=list(tasks), data=data, max_new_tokens=max_new_tokens, seconds=time.time() - start
    )
    return results


# ------------------------------------------------------------------------------ the report


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def language_rows(results: dict) -> list[tuple[str, float, float | None, str]]:
    """(metric, model, baseline, baseline's name) for every metric the results hold."""
    rows = []
    if "captions" in results:
        c = results["captions"]
        b = c.get("baseline") or {}
        name = "commonest train caption"
        rows.append(
            (f"caption exact match ({c['count']})", c["exact_match"], b.get("exact_match"), name)
        )
        rows.append((f"caption token F1 ({c['count']})", c["token_f1"], b.get("token_f1"), name))
    if "vqa" in results:
        v, b = results["vqa"], results["vqa"]["baseline"]
        name = "majority answer per type"
        rows.append((f"VQA accuracy ({v['count']} questions)", v["accuracy"], b["accuracy"], name))
        for t, row in v["per_type"].items():
            base = b["per_type"][t]["accuracy"]
            rows.append((f"VQA accuracy: {t} ({row['count']})", row["accuracy"], base, name))
    if "text" in results:
        t = results["text"]
        rows.append(
            (
                f"text bits per byte ({t['documents']} documents, {t['bytes']} bytes; lower is "
                "better)",
                t["bits_per_byte"],
                t.get("unigram_bits_per_byte"),
                "unigram",
            )
        )
    return rows


def language_markdown(results: dict) -> str:
    """The language section of eval.md: the metrics table, what was evaluated, the samples."""
    lines = ["## Vision-language and text", ""]
    for part, text in results.get("data", {}).items():
        lines.append(f"- {part}: {text}")
    ended = [
        f"{results[k]['ended_at_eos']} of {results[k]['count']} {k}"
        for k in ("captions", "vqa")
        if k in results
    ]
    if ended:
        lines.append(
            f"- greedy, at most {results.get('max_new_tokens', '?')} new tokens; ended at end of "
            f"text: {', '.join(ended)}"
        )
    lines += ["", "| metric | model | baseline |", "|---|---:|---|"]
    for metric, model, base, name in language_rows(results):
        lines.append(f"| {metric} | {_f(model)} | {_f(base)} ({name}) |")
    samples = results.get("samples") or []
    cell = lambda text: " ".join(str(text).split()).replace("|", "\\|")  # noqa: E731 (one cell)
    if samples:
        lines += ["", "| scene | prompt | truth | generated |", "|---:|---|---|---|"]
        for s in samples:
            prompt, truth = (s["question"], s["answer"]) if "question" in s else ("", s["caption"])
            made = cell(s["predicted"])
            lines.append(f"| {s.get('scene_id', '')} | {prompt} | {cell(truth)} | {made} |")
    for s in (results.get("text") or {}).get("samples", []):
        lines += ["", f"Continuation of `{cell(s['prompt'])}`: `{cell(s['generated'])}`"]
    return "\n".join(lines)


def language_panels(results: dict) -> list[tuple[str, float]]:
    """The plot panels the results need, (kind, width in inches): 'vl' and/or 'text'."""
    panels = []
    if results.get("captions") or results.get("vqa"):
        bars = sum(1 for m, *_ in language_rows(results) if not m.startswith("text"))
        panels.append(("vl", 2.0 + 0.55 * bars))
    if results.get("text"):
        panels.append(("text", 2.5))
    return panels


def plot_language(axes, results: dict, kinds: Sequence[str]) -> None:
    """Model and baseline bars: captions and VQA on a 0-1 axis, bits per byte on its own."""
    import numpy as np

    rows = language_rows(results)
    for ax, kind in zip(axes, kinds, strict=True):
        chosen = [r for r in rows if r[0].startswith("text") == (kind == "text")]
        x = np.arange(len(chosen))
        ax.bar(x - 0.2, [r[1] for r in chosen], 0.4, label="model", color="tab:blue")
        base = [np.nan if r[2] is None else r[2] for r in chosen]
        ax.bar(x + 0.2, base, 0.4, label="baseline", color="tab:grey")
        labels = ["bits per byte"] if kind == "text" else [r[0].split(" (")[0] for r in chosen]
        ax.set_xticks(
            x, labels, rotation=45 if kind == "vl" else 0, ha="right" if kind == "vl" else "center"
        )
        if kind == "vl":
            ax.set_ylim(0, 1)
            ax.set_title("captions and VQA (held-out scenes)", fontsize=9)
        else:
            ax.set_title("held-out text (lower is better)", fontsize=9)
        ax.legend(fontsize=8)
