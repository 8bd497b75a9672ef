"""Vision-language and text metrics, and their baselines: pure functions, no model.

Captions and answers are compared after SQuAD's normalization (lower case, punctuation and the
articles a/an/the removed, whitespace collapsed):

    exact_match("The red cube.", "red cube")            # 1.0
    token_f1("a big red cube", ["small red cube"])      # 0.667: best over the references
    vqa_scores(predictions, answers, types)             # accuracy overall and per question type
    majority_baseline(train_answers, train_types, answers, types)   # the same, answering each
                                                                      # type's commonest answer

Text is scored in bits per byte: the summed negative log-likelihood (nats) of the scored tokens
over ln 2 and over the UTF-8 bytes those tokens spell (:func:`token_bytes`), so tokenizers with
different vocabularies compare. :class:`UnigramModel` is the baseline: add-one smoothed token
frequencies over the 32000 text ids, fitted on a train split.

Which tokens are scored [decision]: every token of a document but its first. Documents carry no
begin-of-text token in training (gato/text.py), so nothing predicts the first token; its bytes
are left out of the count, and the unigram baseline scores exactly the same tokens.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


# ----------------------------------------------------------------------- captions and answers


def normalize_answer(text: str) -> str:
    """SQuAD's normalization: lower case, punctuation dropped, articles dropped, whitespace
    collapsed to single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _references(references: str | Sequence[str]) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise ValueError("need at least one reference")
    return refs


def exact_match(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 if the normalized prediction equals a normalized reference, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(r) for r in _references(references)))


def token_f1(prediction: str, references: str | Sequence[str]) -> float:
    """SQuAD's token F1 (over the normalized words, counted with multiplicity), the best over
    the references. Both empty: 1.0; only one empty: 0.0."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for reference in _references(references):
        ref = normalize_answer(reference).split()
        if not pred or not ref:
            best = max(best, float(pred == ref))
            continue
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            precision, recall = common / len(pred), common / len(ref)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def caption_scores(predictions: Sequence[str], references: Sequence) -> dict:
    """Mean exact match and token F1 of predicted captions (each reference a str or a list of
    acceptable captions)."""
    _same_length(predictions, references)
    em = [exact_match(p, r) for p, r in zip(predictions, references, strict=True)]
    f1 = [token_f1(p, r) for p, r in zip(predictions, references, strict=True)]
    return {"exact_match": _mean(em), "token_f1": _mean(f1), "count": len(em)}


def vqa_accuracy(prediction: str, answers: str | Sequence[str]) -> float:
    """One question's accuracy. A single answer: exact match after normalization. Several
    annotators' answers (VQA v2, OK-VQA): the official formula, min(matches among the other
    annotators / 3, 1) averaged over leaving each annotator out."""
    refs = _references(answers)
    if len(refs) == 1:
        return exact_match(prediction, refs)
    pred = normalize_answer(prediction)
    hits = [normalize_answer(r) == pred for r in refs]
    total = sum(hits)
    return _mean([min((total - h) / 3.0, 1.0) for h in hits])


def question_type(question: str) -> str:
    """A question's type from its first words (as VQA groups questions) when the data gives
    none: 'how many', 'what color', 'yes/no' (is/are/does/...), 'what', 'where', 'which',
    'who', else 'other'."""
    words = normalize_answer(question).split()
    if words[:1] == ["q"]:  # "Q: ..."
        words = words[1:]
    head = " ".join(words[:2])
    if head == "how many":
        return "how many"
    if head in ("what color", "what colour"):
        return "what color"
    first = words[0] if words else ""
    if first in ("is", "are", "does", "do", "can", "was", "were", "has", "have", "will"):
        return "yes/no"
    return first if first in ("what", "where", "which", "who") else "other"


def vqa_scores(predictions: Sequence[str], answers: Sequence, types: Sequence[str]) -> dict:
    """{'accuracy': over all questions, 'mean_per_type': the mean of the types' accuracies,
    'count', 'per_type': {type: {'accuracy', 'count'}}} (types sorted)."""
    _same_length(predictions, answers)
    _same_length(predictions, types)
    scores = [vqa_accuracy(p, a) for p, a in zip(predictions, answers, strict=True)]
    per_type: dict[str, list[float]] = {}
    for s, t in zip(scores, types, strict=True):
        per_type.setdefault(t, []).append(s)
    table = {t: {"accuracy": _mean(v), "count": len(v)} for t, v in sorted(per_type.items())}
    return {
        "accuracy": _mean(scores),
        "mean_per_type": _mean([row["accuracy"] for row in table.values()]),
        "count": len(scores),
        "per_type": table,
    }


def majority_answers(answers: Sequence, types: Sequence[str]) -> dict[str, str]:
    """The commonest normalized answer of each question type (every annotator's answer counts;
    ties go to the alphabetically first), and under '' the commonest overall."""
    _same_length(answers, types)
    counts: dict[str, Counter] = {"": Counter()}
    for refs, t in zip(answers, types, strict=True):
        for r in _references(refs):
            counts.setdefault(t, Counter())[normalize_answer(r)] += 1
            counts[""][normalize_answer(r)] += 1
    return {t: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for t, c in counts.items() if c}


def majority_baseline(
    train_answers: Sequence | None,
    train_types: Sequence[str] | None,
    answers: Sequence,
    types: Sequence[str],
) -> dict:
    """:func:`vqa_scores` of answering each question with its type's majority answer, fitted
    on the train split (a type the train split lacks gets the overall majority). Without a train
    split (None), leave-one-out on the evaluated questions: each question gets the majority of
    the other questions of its type, so no question sees its own answer."""
    if train_answers is not None:
        best = majority_answers(train_answers, train_types)
        guesses = [best.get(t, best.get("", "")) for t in types]
    else:
        guesses = []
        for i, t in enumerate(types):
            rest = [j for j in range(len(types)) if j != i]
            best = majority_answers([answers[j] for j in rest], [types[j] for j in rest])
            guesses.append(best.get(t, best.get("", "")))
    return vqa_scores(guesses, answers, types)


# ------------------------------------------------------------------------------------- text


def bits_per_byte(nll_nats: float, num_bytes: int) -> float:
    """Summed negative log-likelihood in nats -> bits per byte of the text it scored."""
    if num_bytes <= 0:
        raise ValueError(f"need a positive number of bytes, got {num_bytes}")
    return float(nll_nats) / math.log(2) / num_bytes


def token_bytes(text_tokenizer, ids: Sequence[int], text: str) -> np.ndarray:
    """UTF-8 bytes each token of `ids` (the encoding of `text`) spells in `text`, (n,) int64.

    SentencePiece pieces count their text ('▁' a space), byte-fallback pieces one byte each, and
    the dummy-prefix space SentencePiece puts before a text's first word is taken off the first
    token (it is not in the text). A tokenizer without SentencePiece pieces counts each token's
    decoded text. A ValueError if the counts do not add up to the text's bytes."""
    ids = [int(i) for i in ids]
    sp = getattr(text_tokenizer, "_sp", None)  # gato.text.TextTokenizer's processor
    if sp is not None:
        counts = [
            1 if sp.is_byte(i) else len(sp.id_to_piece(i).replace("\u2581", " ").encode())
            for i in ids
        ]
    else:
        counts = [len(text_tokenizer.decode([i]).encode("utf-8")) for i in ids]
    counts = np.asarray(counts, np.int64)
    extra = int(counts.sum()) - len(text.encode("utf-8"))
    if extra == 1 and len(counts) and counts[0] >= 1:
        counts[0] -= 1  # the dummy prefix
    elif extra != 0:
        raise ValueError(
            f"the tokens spell {int(counts.sum())} bytes but the text has "
            f"{len(text.encode('utf-8'))}: ids are not the encoding of this text"
        )
    return counts


class UnigramModel:
    """Add-one smoothed token frequencies over `vocab_size` text ids: the text baseline."""

    def __init__(self, counts: np.ndarray):
        self.counts = np.asarray(counts, np.int64)  # (V,)
        total = float(self.counts.sum() + len(self.counts))
        self.log_probs = np.log((self.counts + 1.0) / total)  # (V,)

    @classmethod
    def fit(cls, documents_ids: Sequence[Sequence[int]], vocab_size: int = 32000):
        """Counts of every token of the train documents (ids in [0, vocab_size))."""
        counts = np.zeros(vocab_size, np.int64)
        for ids in documents_ids:
            arr = np.asarray(ids, np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
                raise ValueError(f"token ids must be in [0, {vocab_size})")
            counts += np.bincount(arr, minlength=vocab_size)
        return cls(counts)

    def nll(self, ids: Sequence[int]) -> np.ndarray:
        """Negative log-likelihood (nats) of each token, (n,)."""
        return -self.log_probs[np.asarray(ids, np.int64)]


def unigram_bits_per_byte(
    text_tokenizer, train_documents: Sequence[str], documents: Sequence[str]
) -> dict:
    """Bits per byte of the unigram model fitted on `train_documents`, over the same tokens of
    `documents` as :func:`gato.evaluate_language.model_bits_per_byte` scores."""
    unigram = UnigramModel.fit([text_tokenizer.encode(d) for d in train_documents])
    nll, tokens, nbytes = 0.0, 0, 0
    for doc in documents:
        ids = text_tokenizer.encode(doc)
        if len(ids) < 2:
            continue
        nll += float(unigram.nll(ids[1:]).sum())
        tokens += len(ids) - 1
        nbytes += int(token_bytes(text_tokenizer, ids, doc)[1:].sum())
    return {"bits_per_byte": bits_per_byte(nll, nbytes), "tokens": tokens, "bytes": nbytes}


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _same_length(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} predictions but {len(b)} references")
