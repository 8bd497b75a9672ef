"""Vision-language and text data (GATO_SPEC.md sections 3, 4, 8, 12; issue 14).

- :mod:`gato.vl.scenes`: generated captioning/VQA scenes, deterministic from an id, fixed splits
  (``scene_examples(split, count, seed)``).
- :mod:`gato.vl.text_corpus`: the shipped text corpus (``text_documents(split)``).
- :mod:`gato.vl.images`: images fitted (aspect kept, padded) to multiples of 16.
- :mod:`gato.vl.hub`: JAT's ``conceptual-captions``, ``ok-vqa``, ``oscar`` and ``wikipedia``
  configs, read from the hub or from local parquet in the same schema, and written locally.
- :mod:`gato.vl.folders`: a user's folder of captioned images, or of text files.
- :mod:`gato.vl.sources`: training sources: rows of five (image, text) pairs, text windows.
- :mod:`gato.vl.tasks`: the task names ``vl.*`` and ``text.*`` of the training mixture.
"""
