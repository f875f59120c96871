"""The ``recall`` probe's config section (see docs/recall.md for every key)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ragmon.monitor.config import Duration, ProbeConfig, Strict, config_error

#: Share of ``timeout`` the ground truth may take when ``exact_budget`` is not set.
EXACT_SHARE = 0.4


class DocumentsConfig(Strict):
    """How a chunk id maps to a document id, when the golden set judges documents. Give
    exactly one of `pattern`, `separator` or `field` (see docs/recall.md, "Chunks and
    documents")."""

    pattern: str | None = None
    """A regular expression with a named group `doc`, matched in full against each chunk
    id: `(?P<doc>.+)#\\d+`. A chunk id that does not match is its own document."""
    separator: str | None = Field(default=None, min_length=1)
    """The document id is the part of the chunk id before the last separator (`#`)."""
    field: str | None = Field(default=None, min_length=1)
    """A metadata field the store keeps with each chunk: a pgvector or LanceDB column, a
    Qdrant payload key, a Chroma metadata key (FAISS and HTTP targets keep none)."""
    max_depth: int = Field(default=10, ge=1, le=100)
    """Search up to `max_depth` x k chunks deep to find k distinct documents; fewer is
    reported as a document shortfall."""

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise config_error("documents_pattern", "not a valid regular expression ({why})",
                               {"why": str(exc)}, echo_input=True) from None
        if "doc" not in compiled.groupindex:
            raise config_error("documents_pattern", "the pattern needs a named group 'doc', "
                               "like (?P<doc>.+)#\\d+", echo_input=True)
        return value

    @model_validator(mode="after")
    def _one_way(self) -> DocumentsConfig:
        given = [n for n in ("pattern", "separator", "field") if getattr(self, n) is not None]
        if len(given) != 1:
            raise config_error("documents_mapping", "give exactly one of 'pattern', "
                               "'separator' or 'field' (found {found})",
                               {"found": ", ".join(given) or "none"})
        return self


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
    exact_budget: Duration | None = None
    """Seconds the ground truth (exact search) of one run may take; default 40% of
    `timeout`, leaving the rest to live search, causes and storing. When the whole golden
    set does not fit, fidelity is measured on a rotating subset of the queries, with a
    confidence interval (docs/recall.md, "Ground truth at scale")."""
    #: ANN-vs-exact recall at verdict_k below this is an index problem, baseline or not:
    #: healthy HNSW and IVF indexes reach 0.93 to 1.0 (docs/recall.md, "Index fidelity").
    fidelity_floor: float = Field(default=0.9, ge=0.0, le=1.0)
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
    documents: DocumentsConfig | None = None
    """Judge documents over a chunk index: how a chunk id maps to its document (docs/recall.md,
    "Chunks and documents")."""

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

    @model_validator(mode="after")
    def _budget_within_timeout(self) -> RecallConfig:
        if self.exact_budget is not None and self.exact_budget >= self.timeout:
            raise config_error("exact_budget", "exact_budget ({budget:g}s) must be below the "
                               "probe's timeout ({timeout:g}s): live search and storing need "
                               "time too; raise timeout or lower exact_budget",
                               {"budget": self.exact_budget, "timeout": self.timeout})
        return self

    @property
    def ground_truth_budget(self) -> float:
        """Seconds the run's exact search may take (``exact_budget``, or its default)."""
        return self.exact_budget if self.exact_budget is not None else \
            EXACT_SHARE * self.timeout

    @property
    def decision_k(self) -> int:
        """The k the verdict is decided at."""
        if self.verdict_k is not None:
            return self.verdict_k
        return 10 if 10 in self.k else max(self.k)
