"""Configuration of a drift probe: which embeddings, which reference, which methods, and
how many false alarms the operator accepts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator, model_validator

from ragmon.monitor.config import ConfigPath, Duration, ProbeConfig, Secret, Strict, config_error
from ragmon.probes.drift.methods import DRIFT_METHODS

DEFAULT_METHODS = ["mmd", "classifier", "clusters", "centroid", "norms"]
SECONDS_PER_ROW = 0.2  # MiniLM embedded 300 texts in 32 s at a load of 10 on 2 cores


def default_timeout(rows: int) -> float:
    """A drift run's time limit when none is configured: one minute plus 0.2 s per row of
    the window, whose texts may all be embedded during the run."""
    return 60.0 + SECONDS_PER_ROW * rows


MethodParams: type[Strict] = create_model(  # one optional, typed entry per registered method
    "MethodParams",
    __base__=Strict,
    __doc__="Parameters per drift method (each method's own keys; unknown keys are errors).",
    **{name: (spec.params | None, None)  # type: ignore[call-overload]
       for name, spec in DRIFT_METHODS.items()},
)


class ReferenceConfig(Strict):
    """What the current window is compared with."""

    mode: Literal["pinned", "rolling"] = "pinned"
    """``pinned``: the newest reference stored by ``ragmon baseline capture`` (or, when
    there is none, the first window). ``rolling``: the windows of the last ``period``."""
    period: Duration = 7 * 86400.0
    """For ``rolling``: how far back the reference windows reach (default 7 days)."""
    size: int = Field(default=4000, ge=10)
    """Rows of the reference sample each window is compared with (default 4 windows of the
    default ``window_size``; keep it at 4 windows or more, see docs/drift.md), drawn from
    the reference pool; the pool also holds a disjoint holdout of at least 4 windows (4 x
    ``window_size`` rows) from which the sample's own null is simulated (see docs/drift.md,
    "Calibration conditional on the reference"). A pinned reference fills over the first
    windows until it holds ``size`` + 4 x ``window_size`` rows; a rolling one needs that
    many in its ``period``."""
    null_draws: int = Field(default=2000, ge=100)
    """Pseudo-windows drawn from the holdout to simulate the deciding method's null; its
    calibrated p-values are multiples of 1/(null_draws + 1) (raised to 10/alpha)."""


class AlarmConfig(Strict):
    """False-alarm budget and persistence rule (see docs/drift.md, "Calibrated alarms")."""

    false_alarms: float = Field(default=1.0, gt=0.0)
    """Accepted false alarms per ``per`` on a system that did not drift."""
    per: Duration = 30 * 86400.0
    """The period of the false-alarm budget (default 30 days)."""
    rule: Literal["k_of_n", "cusum"] = "k_of_n"
    """Persistence before an alarm: k of the last n windows differ, or CUSUM."""
    k: int = Field(default=2, ge=1)
    """For ``k_of_n``: windows that must differ among the last ``n``."""
    n: int = Field(default=3, ge=1)
    """For ``k_of_n``: how many recent windows are considered."""
    cusum_drift: float = Field(default=0.5, gt=0.0)
    """For ``cusum``: the reference value subtracted from each standardised statistic."""
    decided_by: str | None = None
    """The method whose calibrated verdict is the probe's (DRIFT, ALARM): one budget per
    probe, not per method. The others are run to explain the shift. Default: ``mmd`` when
    it is in ``methods``, else the first method."""

    @model_validator(mode="after")
    def _k_le_n(self) -> AlarmConfig:
        if self.k > self.n:
            raise config_error("k_of_n", "k ({k}) must not exceed n ({n})",
                                      {"k": self.k, "n": self.n})
        return self


class QueriesConfig(Strict):
    """Where query traffic comes from (source ``queries``)."""

    jsonl: ConfigPath | None = None
    """A JSONL file the RAG app appends to, one ``{"query": ..., "vector": [...]}`` per
    line; tailed across rotation and truncation."""
    http: bool = True
    """Accept batches on ``POST /ingest/<probe>`` of the daemon's listener."""
    token: Secret | None = None
    """Bearer token the ingest endpoint requires (literal, ``env:VAR`` or ``file:PATH``)."""
    max_request_bytes: int = Field(default=16 << 20, ge=1024)
    """Larger ingest requests are refused with 413 before their body is read (16 MiB: about
    1,900 384-d vectors with their texts as JSON numbers, 7,500 as base64 float32)."""
    text_field: str = "query"
    """Field holding the query text in JSONL lines and ingest items."""
    vector_field: str = "vector"
    """Field holding the query vector, when the app sends one: a list of numbers, or a base64
    string of little-endian float32 (4 bytes per dimension)."""
    id_field: str = "id"
    """Optional field holding the query's id (kept in SQL with cluster examples)."""
    poll: Duration = 5.0
    """How often the daemon reads new lines of the JSONL file."""


class DriftConfig(ProbeConfig):
    """A drift probe: one source of embeddings against a stored reference."""

    kind: Literal["drift"]
    source: Literal["queries", "index", "canary"]
    """``queries``: live query traffic; ``index``: vectors sampled from ``target``;
    ``canary``: ``texts`` embedded on every run."""
    embedder: str | None = None
    """Embedder of query texts and canaries (default: the target's)."""
    target: str | None = None
    """The vector index: required for ``index``; for ``queries`` it enables coverage."""
    methods: list[str] = Field(default_factory=lambda: list(DEFAULT_METHODS), min_length=1)
    """Drift methods to run (registry names); ``alarm.decided_by`` decides, the others
    explain."""
    method_params: MethodParams = MethodParams()  # type: ignore[valid-type]
    """Parameters per method, e.g. ``{mmd: {permutations: 1000}}``; each method's keys are
    checked (see docs/drift.md)."""
    window_size: int = Field(default=1000, ge=10)
    """Rows in the current window: reservoir capacity (queries) or sample size (index)."""
    min_samples: int = Field(default=50, ge=5)
    """Fewer rows in a window give "insufficient data", never a p-value."""
    reference: ReferenceConfig = ReferenceConfig()
    alarm: AlarmConfig = AlarmConfig()
    queries: QueriesConfig = QueriesConfig()
    texts: list[str] = Field(default_factory=list)
    """For ``canary``: the texts embedded on every run (one window)."""
    coverage_quantile: float = Field(default=0.95, gt=0.5, lt=1.0)
    """Queries farther from the index than this quantile of the reference are gaps."""
    seed: int = 0
    timeout: Duration = 60.0
    """A run past this is recorded as `timeout`. Default: 60 s plus 0.2 s per row of the
    window (`window_size`, or the canary's `texts`), which may all be embedded during the run.
    """

    @model_validator(mode="before")
    @classmethod
    def _timeout_by_window(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("timeout") is None:
            rows = (len(data["texts"]) if data.get("source") == "canary"
                    and isinstance(data.get("texts"), list) else data.get("window_size", 1000))
            if isinstance(rows, int):
                data = {**data, "timeout": default_timeout(rows)}
        return data

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in DRIFT_METHODS]
        if unknown:
            raise config_error(
                "drift_method", "unknown drift method(s) {unknown}; valid methods: {valid}",
                {"unknown": ", ".join(map(repr, unknown)), "valid": DRIFT_METHODS.valid()},
                echo_input=True,
            )
        return value

    @model_validator(mode="after")
    def _source_needs(self) -> DriftConfig:
        if self.source == "index" and self.target is None:
            raise config_error("drift_target", "source 'index' needs a 'target'", {})
        if self.source == "canary" and not self.texts:
            raise config_error(
                "drift_texts", "source 'canary' needs 'texts' (at least min_samples of them)",
                {},
            )
        if self.source != "index" and self.embedder is None and self.target is None:
            raise config_error(
                "drift_embedder", "give an 'embedder' (or a 'target' that names one)", {}
            )
        if self.alarm.decided_by is not None and self.alarm.decided_by not in self.methods:
            raise config_error(
                "drift_decided_by",
                "alarm.decided_by '{decider}' is not one of the probe's methods ({methods}); "
                "name one of them or add it to 'methods'",
                {"decider": self.alarm.decided_by, "methods": ", ".join(self.methods)},
            )
        given: Strict = self.method_params  # MethodParams is built at run time from Strict
        unknown = sorted(set(given.model_fields_set) - set(self.methods))
        if unknown:
            raise config_error(
                "drift_params", "method_params for methods not in 'methods': {unknown}",
                {"unknown": ", ".join(unknown)},
            )
        return self

    @property
    def decider(self) -> str:
        """The method whose verdict is the probe's (``alarm.decided_by`` or its default)."""
        if self.alarm.decided_by is not None:
            return self.alarm.decided_by
        return "mmd" if "mmd" in self.methods else self.methods[0]

    def params_of(self, method: str) -> dict[str, Any]:
        """The parameters the config sets for ``method`` (only those it sets)."""
        params: BaseModel | None = getattr(self.method_params, method, None)
        return params.model_dump(exclude_unset=True) if params is not None else {}
