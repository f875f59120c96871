"""Embeddings of the demo corpus, cached on disk keyed by texts + embedder fingerprint.

Encoding a few thousand texts takes tens of seconds on two cores; the demo and the test
suite embed the same corpus again and again, so the array is kept as a .npy file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragmon"
    return Path(os.environ.get("RAGMON_CACHE_DIR", default))


def cached_encode(embedder: Any, texts: list[str], directory: Path | None = None) -> np.ndarray:
    """``embedder.encode(texts)``, computed once per (texts, fingerprint) and kept on disk."""
    h = hashlib.sha256(embedder.fingerprint_id().encode())
    for text in texts:
        h.update(text.encode())
        h.update(b"\0")
    folder = directory or cache_dir() / "embeddings"
    path = folder / f"{h.hexdigest()[:32]}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    vectors: np.ndarray = embedder.encode(texts)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npy.tmp")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, vectors)
    os.replace(tmp, path)  # atomic: concurrent test workers never read half a file
    return vectors
