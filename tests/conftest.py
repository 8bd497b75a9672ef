"""Shared test helpers."""

import os

import numpy as np

# One compute thread per test process (subprocesses inherit it; set before torch loads): `make
# test` runs two workers on two cores, and the tests' matrices are tiny, so a second thread per
# process would only fight the other worker for a core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
import pytest


class CharTokenizer:
    """A stand-in text tokenizer (one id per character) for layout tests, so that they check
    the token layout and not the SentencePiece model (tested on its own in test_text.py)."""

    vocab_size = 32000

    def encode(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"expected str, got {type(text).__name__}")
        return np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64) % 32000

    def decode(self, ids) -> str:
        return "".join(chr(int(i)) for i in ids)


@pytest.fixture
def chars() -> CharTokenizer:
    return CharTokenizer()


# Small real expert datasets, collected once per test worker into a temporary folder, so that no
# test reads the git-ignored data/ of a developer's checkout (a clean clone has none).
_SMALL_SUITE = {
    "cartpole.balance": dict(episodes=3, max_steps=200),
    "babyai.go-to-red-ball": dict(episodes=4),
    "babyai.open": dict(episodes=3),
    "atari.pong": dict(episodes=2, max_steps=300),
}


@pytest.fixture(scope="session")
def collected(tmp_path_factory):
    """A data folder with the tasks of `_SMALL_SUITE`, collected by the project's experts."""
    from gato.collect import collect_task
    from gato.envs import get_task

    root = tmp_path_factory.mktemp("collected")
    for task, options in _SMALL_SUITE.items():
        collect_task(
            get_task(task), data_dir=root, workers=1, random_episodes=1, progress=False, **options
        )
    return root
