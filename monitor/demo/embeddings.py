"""Embeddings of the demo corpus, cached on disk keyed by texts + embedder fingerprint.

Encoding a few thousand texts takes tens of seconds on two cores; the demo and the test
suite embed the same corpus again and again, so the array is kept as a .npy file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Texts per encode call when progress is reported.
BATCH = 128


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragmon"
    return Path(os.environ.get("RAGMON_CACHE_DIR", default))


def cached_encode(embedder: Any, texts: list[str], directory: Path | None = None,
                  on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """``embedder.encode(texts)``, computed once per (texts, fingerprint) and kept on disk.

    With ``on_batch``, texts are encoded in batches and ``on_batch(n)`` is called after each
    (a progress display); a cached array counts as one batch of all texts."""
    h = hashlib.sha256(embedder.fingerprint_id().encode())
    for text in texts:
        h.update(text.encode())
        h.update(b"\0")
    folder = directory or cache_dir() / "embeddings"
    path = folder / f"{h.hexdigest()[:32]}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        if on_batch is not None:
            on_batch(len(texts))
        return cached
    if on_batch is None:
        vectors: np.ndarray = embedder.encode(texts)
    else:
        parts = []
        for start in range(0, len(texts), BATCH):
            parts.append(embedder.encode(texts[start:start + BATCH]))
            on_batch(len(parts[-1]))
        vectors = np.concatenate(parts) if parts else embedder.encode(texts)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npy.tmp")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, vectors)
    os.replace(tmp, path)  # atomic: concurrent test workers never read half a file
    return vectors
