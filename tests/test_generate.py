"""gato.generate and gato.text_generator: cached sampling equals a recompute, stopping, top-k,
image fitting, the command's output and its one-line errors."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from language_fixtures import caption_model
from model_fixtures import debug_model
from PIL import Image

from gato.checkpoint import save_checkpoint
from gato.errors import UserError
from gato.generate import main
from gato.images import image_size_for, load_image, resize_and_pad
from gato.inputs import GatoInputs
from gato.sequence import concatenate
from gato.serialize import document_sequence, tokenize_image_text_pairs
from gato.text import TEXT_VOCAB_SIZE, get_text_tokenizer
from gato.text_generator import (
    END_OF_TEXT,
    LOCAL_POSITIONS,
    MAX_NEW_TOKENS,
    TextGenerator,
    TextStream,
    eos_id_of,
    generation_prompt,
    sample_text_token,
)

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Q: what colour is the cube? A:"


@pytest.fixture(scope="module")
def tok():
    return get_text_tokenizer()


def scrambled_model(**overrides):
    """A random `debug` model whose block weights are large (std 0.3): with the default init the
    tied embedding makes greedy decoding repeat its input token, which would test little."""
    model = debug_model(0, **overrides)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.blocks.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    return model


@pytest.fixture(scope="module")
def model():
    return scrambled_model()


def image(seed=0, shape=(32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def reference(model, prefix, n, pair, window=None):
    """Greedy text tokens by a full forward over the whole stream for every token (banded with
    `window`), and the logits each came from: no cache, no generator code."""
    seq, tokens, logits = prefix, [], []
    for _ in range(n):
        with torch.no_grad():
            out, _ = model(GatoInputs.from_sequences([seq]), last_only=True, attn_window=window)
        token = int(torch.argmax(out[0, :TEXT_VOCAB_SIZE]))
        tokens.append(token)
        logits.append(out[0])
        nxt = document_sequence([token])
        nxt.local_positions[:] = int(seq.local_positions[-1]) + 1 if pair else 0
        seq = concatenate([seq, nxt])
    return tokens, logits


def run(model, tok, seq, n, **kwargs):
    gen = TextGenerator(model, tok, eos_id=None, **kwargs)
    gen.feed(seq)
    tokens, logits = [], []
    for _ in range(n):
        tokens.append(gen.next_token())
        logits.append(gen.logits)
    return tokens, logits, gen


@pytest.mark.parametrize("kind", ["text", "caption", "question"])
def test_cached_greedy_equals_recompute(model, tok, kind):
    seq = (
        tokenize_image_text_pairs([(image(), "" if kind == "caption" else QUESTION)], tok)
        if kind != "text"
        else document_sequence(tok.encode("The quick brown fox jumps over"))
    )
    want, want_logits = reference(model, seq, 12, pair=kind != "text")
    assert len(set(want)) > 3  # a real test: greedy does not just repeat one token
    for use_cache in (True, False):
        got, logits, gen = run(
            model, tok, prompt_for(tok, kind), 12, greedy=True, use_cache=use_cache
        )
        assert got == want
        for a, b in zip(logits, want_logits, strict=True):  # each token's logits
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
        assert gen.context_length == len(seq) + 12


def prompt_for(tok, kind):
    if kind == "text":
        return generation_prompt(tok, "The quick brown fox jumps over")
    return generation_prompt(tok, "" if kind == "caption" else QUESTION, image())


def test_sliding_memory_equals_banded_forward(model, tok):
    """A prompt longer than the context slides like acting's memory: cached and uncached both
    equal a banded-causal forward over the whole stream, past the window."""
    text = "one two three four five six seven eight nine ten eleven twelve thirteen " * 2
    seq = document_sequence(tok.encode(text))
    assert len(seq) > 16
    want, _ = reference(model, seq, 24, pair=False, window=16)
    for use_cache in (True, False):
        got, _, _ = run(
            model,
            tok,
            generation_prompt(tok, text),
            24,
            greedy=True,
            context_tokens=16,
            use_cache=use_cache,
        )
        assert got == want
    unwindowed, _ = reference(model, seq, 24, pair=False)
    assert unwindowed != want  # the window mattered


def test_sampled_cached_equals_uncached(model, tok):
    seq = generation_prompt(tok, QUESTION, image(3))
    a = run(model, tok, seq, 20, temperature=1.0, top_k=50, seed=7)[0]
    b = run(model, tok, seq, 20, temperature=1.0, top_k=50, seed=7, use_cache=False)[0]
    c = run(model, tok, seq, 20, temperature=1.0, top_k=50, seed=8)[0]
    assert a == b and a != c


def test_stops_at_end_of_text(model, tok):
    assert eos_id_of(tok) == 2 == tok._sp.eos_id()
    seq = generation_prompt(tok, "The quick brown fox jumps over")
    gen = TextGenerator(model, tok, greedy=True, eos_id=None)
    gen.feed(seq)
    free = list(gen.generate(12))
    assert gen.stop_reason == MAX_NEW_TOKENS and len(free) == 12
    k = next(i for i in range(2, 12) if free[i] not in free[:i])
    gen = TextGenerator(model, tok, greedy=True, eos_id=free[k])  # that token ends the text
    gen.feed(seq)
    assert list(gen.generate(12)) == free[:k]
    assert gen.stop_reason == END_OF_TEXT
    assert gen.context_length == len(seq) + k  # the end-of-text token is not fed


def test_top_k_and_text_only():
    logits = torch.randn(33025, generator=torch.Generator().manual_seed(0))
    logits[32500] = 50.0  # a continuous bin: never a text token
    logits[33024] = 50.0  # the separator
    top3 = set(torch.topk(logits[:TEXT_VOCAB_SIZE], 3).indices.tolist())
    g = torch.Generator().manual_seed(0)
    drawn = {sample_text_token(logits, temperature=5.0, top_k=3, generator=g) for _ in range(300)}
    assert drawn == top3
    assert sample_text_token(logits, greedy=True) == int(torch.argmax(logits[:TEXT_VOCAB_SIZE]))
    assert sample_text_token(logits, top_k=1, generator=g) == sample_text_token(logits, greedy=True)
    wide = {sample_text_token(logits, temperature=5.0, generator=g) for _ in range(300)}
    assert len(wide) > 100 and max(wide) < TEXT_VOCAB_SIZE
    with pytest.raises(ValueError, match="top_k"):
        sample_text_token(logits, top_k=0)


def test_pair_stops_at_local_positions(tok):
    model = scrambled_model(max_local_positions=12)
    seq = generation_prompt(tok, "Q: red?", image())  # 4 patches and the question's tokens
    gen = TextGenerator(model, tok, greedy=True, eos_id=None)
    gen.feed(seq)
    tokens = list(gen.generate(20))
    assert len(tokens) == 12 - len(seq) and gen.stop_reason == LOCAL_POSITIONS
    with pytest.raises(ValueError, match="local positions"):
        TextGenerator(model, tok).feed(
            generation_prompt(tok, "a much longer question " * 3, image())
        )


def test_text_stream_increments(tok):
    text = "naïve café — Zürich, 東京, emoji 🙂 and\nnew lines"
    ids = tok.encode(text)
    stream = TextStream(tok)
    pieces = [stream.push(i) for i in ids]
    assert "".join(pieces) + stream.flush() == text
    assert all("\ufffd" not in p for p in pieces)
    cont = TextStream(tok, tok.encode("The cat"))  # a continuation keeps its leading space
    assert cont.push(tok.encode("The cat sat")[-1]) == " sat"


def test_resize_and_pad():
    img = image(shape=(50, 100, 3))
    out = resize_and_pad(img, 80)
    assert out.shape == (80, 80, 3) and out.dtype == np.uint8
    assert (out[:20] == 0).all() and (out[60:] == 0).all()  # 80x40, centred: 20 rows above/below
    assert out[20:60].std() > 10  # the picture is in the middle
    tall = resize_and_pad(np.full((64, 16), 200, np.uint8), 32)  # grayscale, 8x32 after scaling
    assert tall.shape == (32, 32, 3) and (tall[:, :12] == 0).all() and (tall[:, 12:20] == 200).all()
    same = image(shape=(48, 48, 3))
    assert np.array_equal(resize_and_pad(same, 48), same)
    with pytest.raises(ValueError, match="multiple of 16"):
        resize_and_pad(img, 40)
    # the size training reads an image at: scenes (64) and fitted photos (128) as they are
    assert image_size_for(image(shape=(64, 64, 3))) == 64
    assert image_size_for(image(shape=(128, 128, 3))) == 128
    assert image_size_for(image(shape=(32, 32, 3))) == 128
    assert image_size_for(img) == 128 and image_size_for(img, 48) == 48


# ------------------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model):
    return save_checkpoint(tmp_path_factory.mktemp("run"), 3, model.state_dict(), model.config, {})


def test_command_continues_text(checkpoint, model, tok, capsys):
    argv = ["--checkpoint", str(checkpoint), "--prompt", "The cat", "--greedy"]
    assert main([*argv, "--max-new-tokens", "6"]) == 0
    out, err = capsys.readouterr()
    tokens, _, _ = run(model, tok, generation_prompt(tok, "The cat"), 6, greedy=True)
    assert out == tok.decode(tok.encode("The cat").tolist() + tokens)[len("The cat") :] + "\n"
    assert "step 3" in err and "6 tokens, stopped: max new tokens" in err


def test_command_captions_a_resized_image(checkpoint, model, tok, tmp_path, capsys):
    path = tmp_path / "wide.png"
    Image.fromarray(image(shape=(50, 100, 3))).save(path)
    argv = ["--checkpoint", str(checkpoint), "--image", str(path), "--greedy"]
    assert main([*argv, "--max-new-tokens", "5", "--image-size", "32"]) == 0
    out, err = capsys.readouterr()
    assert "100x50" in err and "resized 100x50 to 32x16 (aspect kept)" in err and "32x32" in err
    fitted = resize_and_pad(load_image(path), 32)
    tokens, _, _ = run(model, tok, generation_prompt(tok, "", fitted), 5, greedy=True)
    assert out == tok.decode(tokens) + "\n"
    assert main([*argv, "--max-new-tokens", "1"]) == 0  # no --image-size: fitted as in training
    assert "resized 100x50 to 128x64 (aspect kept), padded with black to 128x128" in (
        capsys.readouterr().err
    )


def test_command_chat(checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello there\n\nwhat next?\n"))
    argv = ["--checkpoint", str(checkpoint), "--chat", "--max-new-tokens", "4", "--seed", "1"]
    assert main(argv) == 0
    out, _ = capsys.readouterr()
    assert out.count("\n") == 2  # two turns (the empty line is skipped), one reply line each


def test_trained_model_captions_and_stops_at_end_of_text(tok, tmp_path, capsys):
    """A debug model trained a few steps on (image, caption, end of text) captions each image
    through the command and stops at end of text."""
    model, images, captions = caption_model(tok)
    ckpt = save_checkpoint(tmp_path / "run", 30, model.state_dict(), model.config, {})
    for i, (img, caption) in enumerate(zip(images, captions, strict=True)):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        for cache in ([], ["--no-cache"]):
            argv = ["--checkpoint", str(ckpt), "--image", str(tmp_path / f"{i}.png"), "--greedy"]
            argv += ["--image-size", "32"]  # the size it was trained at
            assert main([*argv, *cache]) == 0
            out, err = capsys.readouterr()
            assert out == caption + "\n"
            assert f"({len(tok.encode(caption))} tokens, stopped: end of text)" in err
            assert "resized" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--image", "missing.png"], "image missing.png does not exist"),
        (["--image", "{bad}"], "cannot be read as an image"),
        (["--prompt", "  "], "--prompt is empty"),
        ([], "nothing to do"),
        (["--chat", "--image", "x.png"], "--chat is text only"),
        (["--prompt", "hi", "--top-k", "0"], "--top-k must be at least 1"),
        (["--prompt", "hi", "--image-size", "40"], "multiple of 16"),
        (["--prompt", "hi", "--checkpoint", "{empty}"], "checkpoint"),
    ],
)
def test_command_errors(argv, message, tmp_path, monkeypatch):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    argv = [a.format(bad=bad, empty=tmp_path / "empty") for a in argv]
    with pytest.raises(UserError, match=re.escape(message)):
        main(argv)


def test_missing_image_is_one_line_exit_2(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "gato.generate", "--image", str(tmp_path / "no.png")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"python -m gato.generate: error: image {tmp_path / 'no.png'} does not exist"
    ]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
