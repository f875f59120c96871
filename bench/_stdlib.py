"""The bench scripts' real text, loaded one way for all of them: the stdlib docstring corpus
(``ragmon.monitor.demo.corpus``), the bundled MiniLM embedder and the corpus's embeddings
(cached on disk by ``ragmon.monitor.demo.embeddings``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def minilm() -> Any:
    """The bundled all-MiniLM-L6-v2 embedder (loaded lazily on first encode)."""
    from ragmon.monitor.embedders.sentence_transformers import (
        SentenceTransformerEmbedder,
        SentenceTransformersConfig,
    )

    return SentenceTransformerEmbedder("minilm", SentenceTransformersConfig(
        kind="sentence-transformers", model="all-MiniLM-L6-v2"))


def stdlib_embeddings() -> tuple[Any, list[Any], np.ndarray]:
    """(embedder, corpus chunks, float32 vectors; row i embeds chunk i)."""
    from ragmon.monitor.demo.corpus import stdlib_corpus
    from ragmon.monitor.demo.embeddings import cached_encode

    embedder = minilm()
    corpus = stdlib_corpus()
    vectors = np.asarray(cached_encode(embedder, [c.text for c in corpus]), np.float32)
    return embedder, corpus, vectors
