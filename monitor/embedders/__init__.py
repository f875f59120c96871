"""Embedders turn texts into vectors. One registry keyed by the config ``kind``.

An embedder has a *fingerprint*: everything that decides which vector a text gets (model
identity, dimension, normalisation, truncation). Stored references carry it, so vectors
from different pipelines are never compared as if they were the same. It records what the
pipeline does rather than how its settings are spelt: a setting that changes no vector (for
example ``normalize: false`` on a model that normalises anyway) leaves it unchanged.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ragmon.monitor.embedders.sentence_transformers import SentenceTransformerEmbedder
from ragmon.monitor.kinds import KindSpec, Registry


class Embedder(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    def fingerprint(self) -> dict[str, Any]: ...

    def fingerprint_id(self) -> str: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


EMBEDDER_KINDS: Registry[Embedder] = Registry("embedder", [
    KindSpec("sentence-transformers", SentenceTransformerEmbedder,
             SentenceTransformerEmbedder.Config),
])


def build_embedder(name: str, config: Any) -> Embedder:
    """Instantiate the embedder for a validated config entry (the model loads lazily)."""
    return EMBEDDER_KINDS.build(config.kind, name, config)
