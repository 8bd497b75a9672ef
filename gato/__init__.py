"""Gato: one decoder transformer that reads every modality as tokens and acts in many environments.

The layers, bottom up: `gato.tokenizer` (values -> token ids, pure numpy), `gato.specs` and
`gato.serialize` (observations, actions, episodes -> `gato.sequence.TokenSequence`), `gato.text`
(SentencePiece), then the model, data, training and acting layers built on them.
"""

__version__ = "0.1.0"
