"""A `debug` Gato trained for a few steps to caption two images, each caption ending in the
SentencePiece end-of-text token: for the generation and language-evaluation tests."""

from __future__ import annotations

import numpy as np
import torch
from model_fixtures import debug_model

from gato.inputs import GatoInputs
from gato.sequence import concatenate
from gato.serialize import document_sequence, tokenize_image_text_pairs

CAPTIONS = ("a red cube", "two blue balls on the left")
EOS = 2  # SentencePiece's end of text in tokenizers/gato_sp32000.model


def caption_images(size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in CAPTIONS]


def caption_pair(image, caption, tok):
    """[image patches, caption, end of text] with the pair's local positions counting on."""
    pair = tokenize_image_text_pairs([(image, caption)], tok)
    eos = document_sequence([EOS])
    eos.local_positions[:] = len(pair)
    return concatenate([pair, eos])


def caption_model(tok, steps: int = 30):
    """(model in eval mode, images, captions): memorised after `steps` AdamW steps (~5 s)."""
    images = caption_images()
    pairs = [caption_pair(i, c, tok) for i, c in zip(images, CAPTIONS, strict=True)]
    inputs = GatoInputs.from_sequences(pairs)
    model = debug_model(0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=6e-3)
    for _ in range(steps):
        _, loss = model(inputs, *inputs.next_token_targets())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), images, list(CAPTIONS)
