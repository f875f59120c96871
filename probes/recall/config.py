"""The ``recall`` probe's config section (see docs/recall.md for every key)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from ragmon.monitor.config import ProbeConfig, config_error


class RecallConfig(ProbeConfig):
    """A recall probe: one target, one golden set (see docs/recall.md)."""

    kind: Literal["recall"]
    target: str
    golden_set: str
    embedder: str | None = None
    k: list[int] = Field(default_factory=lambda: [1, 5, 10, 20], min_length=1)
    #: The k at which the verdict is decided (default 10 when configured, else the largest k).
    verdict_k: int | None = None
    gain: Literal["linear", "exponential"] = "linear"
    #: Queries per search call: the time budget is checked between calls, and an exact
    #: search scans the index once per call, so larger is faster.
    search_batch: int = Field(default=1024, ge=1)
    fidelity_epsilon: float = Field(default=1e-6, ge=0.0)
    fidelity_floor: float = Field(default=0.5, ge=0.0, le=1.0)
    fidelity_min_effect: float = Field(default=0.05, gt=0.0, le=1.0)
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    min_effect: float = Field(default=0.02, ge=0.0, le=1.0)
    bootstrap_resamples: int = Field(default=2000, ge=100)
    vector_cosine_threshold: float = Field(default=0.9999, gt=0.0, le=1.0)
    #: Stored vectors sampled per run for NaN, zero, duplicate and norm statistics (0: off).
    sample_size: int = Field(default=256, ge=0)
    #: The canary probe to consult; default: any canary probe of the same embedder.
    canary: str | None = None
    report_queries: int = Field(default=20, ge=0)

    @field_validator("k")
    @classmethod
    def _ks(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise config_error("k_positive", "every k must be a positive integer",
                               echo_input=True)
        return sorted(set(value))

    @field_validator("verdict_k")
    @classmethod
    def _verdict_k(cls, value: int | None, info: ValidationInfo) -> int | None:
        ks = info.data.get("k")
        if value is not None and ks is not None and value not in ks:
            raise config_error("verdict_k", "must be one of k {ks}", {"ks": str(ks)},
                               echo_input=True)
        return value

    @property
    def decision_k(self) -> int:
        """The k the verdict is decided at."""
        if self.verdict_k is not None:
            return self.verdict_k
        return 10 if 10 in self.k else max(self.k)
