"""The config file's sections. Kinded sections (embedders, targets, probes) take their entry
classes from the registries, so adding a kind never touches this file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    Tag,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from ragmon.monitor.config._types import (
    ConfigPath,
    Duration,
    ExistingPath,
    KindConfig,
    OptionalDelay,
    Secret,
    Strict,
    base_dir,
)


class StoreConfig(Strict):
    """Where history lives. SQLite by default; PostgreSQL when several daemons share it."""

    url: Secret = SecretStr("sqlite:///ragmon.db")
    """SQLAlchemy URL: `sqlite:///FILE` (relative to the config file; WAL mode) or
    `postgresql://USER@HOST/DB` (psycopg 3). A secret: literal, `{env: VAR}` or `{file: PATH}`;
    never logged."""
    retention: Duration = 90 * 86400.0
    """Runs (with their values and query rows) older than this are deleted, every 6 hours."""
    migrate_on_start: bool = True
    """Upgrade the schema at start (under an advisory lock on PostgreSQL); when false, refuse to
    start unless the schema is at head."""

    @field_validator("url", mode="after")
    @classmethod
    def _sqlite_path(cls, url: SecretStr, info: ValidationInfo) -> SecretStr:
        raw = url.get_secret_value()
        if not raw.startswith("sqlite:///") or raw == "sqlite:///:memory:":
            return url
        path = Path(raw.removeprefix("sqlite:///").split("?")[0])
        if not path.is_absolute():
            path = (base_dir(info) / path).resolve()
        if not path.parent.is_dir():
            raise PydanticCustomError(
                "store_dir",
                "directory {dir} for the SQLite store does not exist; create it or change "
                "store.url",
                {"dir": repr(str(path.parent))},
            )
        return SecretStr(f"sqlite:///{path}")


class ServerConfig(Strict):
    """The HTTP listener: /metrics, /healthz, /readyz."""

    listen: str = "127.0.0.1:9464"
    """HOST:PORT of /metrics, /healthz and /readyz. Use `0.0.0.0:9464` in a container."""
    shutdown_grace: Duration = 10.0
    """On SIGTERM/SIGINT, how long runs in flight may finish; a run still going after it is not
    stored (never half-stored)."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise PydanticCustomError(
                "listen", "{value} is not HOST:PORT, like '0.0.0.0:9464'", {"value": repr(value)}
            )
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class LoggingConfig(Strict):
    format: Literal["text", "json"] = "text"
    """`text` for people, `json` (one object per line, with probe and target fields) for log
    pipelines."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged."""


class SchedulerConfig(Strict):
    """Defaults for every probe job (APScheduler 3, UTC)."""

    max_workers: int = Field(default=4, ge=1, le=64)
    """Probes that may run at the same time."""
    misfire_grace: Duration = 300.0
    """A run that could not start on time (daemon busy or paused) still starts within this; later
    ones are coalesced into one."""
    heartbeat: Duration = 5.0
    """Scheduler heartbeat period; /healthz fails when the heartbeat is older than 3 periods + 5s.
    """


class GoldenSetConfig(Strict):
    """A set of queries with judged relevant documents."""

    path: ExistingPath
    """The golden set file (or BEIR folder), relative to the config file."""
    format: Literal["ragmon", "beir", "trec"] = "ragmon"
    split: str = "test"
    queries: ExistingPath | None = None
    keep_last_good: bool = False


class ProbeConfig(KindConfig):
    """Fields every probe kind has: how often, how long it may take."""

    every: Duration | None = None
    """Interval schedule (`30s`, `5m`, `1h`). Default 5m when neither `every` nor `cron` is given.
    """
    cron: str | None = None
    """Cron schedule in UTC (`*/15 * * * *`), instead of `every`."""
    timeout: Duration = 60.0
    """A run past this is recorded as `timeout`; later runs still happen."""
    jitter: OptionalDelay = 5.0
    """Random delay up to this added to each run, so replicas and probes spread out."""
    misfire_grace: Duration | None = None
    """Per-probe override of `scheduler.misfire_grace`."""

    @model_validator(mode="after")
    def _one_schedule(self) -> ProbeConfig:
        if self.every is not None and self.cron is not None:
            raise PydanticCustomError(
                "schedule", "give either 'every' or 'cron', not both", {}
            )
        return self

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise PydanticCustomError(
                "cron", "{value} is not a cron expression ({reason})",
                {"value": repr(value), "reason": str(exc)},
            ) from None
        return value

    @property
    def interval(self) -> float:
        """Seconds between runs (for a cron schedule, an estimate from its next two fires)."""
        if self.cron is None:
            return self.every or 300.0
        from datetime import UTC, datetime

        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(self.cron, timezone="UTC")
        first = trigger.get_next_fire_time(None, datetime.now(UTC))
        assert first is not None
        second = trigger.get_next_fire_time(first, first)
        return (second - first).total_seconds() if second else 86400.0


class TargetConfig(KindConfig):
    """Fields every vector index target has."""

    embedder: str | None = None
    """Name of the embedder (in `embedders`) that produced this index's vectors; probes embed
    queries with it."""
    timeout: Duration = 30.0
    """Time limit of one call to the store."""


class EmbedderConfig(KindConfig):
    """Fields every embedder has."""

    batch_size: int = Field(default=64, ge=1)
    """Texts encoded per batch."""


class ReportConfig(Strict):
    """The weekly drift report email (filled in by the report feature)."""


def kinded_union(what: str, registry: dict[str, Any]) -> Any:
    """A tagged union over ``registry[kind].Config``; unknown kinds list the valid ones."""
    valid = ", ".join(sorted(registry)) or "(none installed)"

    def kind_of(value: Any) -> str | None:
        return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)

    members = [Annotated[spec.Config, Tag(kind)] for kind, spec in sorted(registry.items())]
    if not members:
        members = [Annotated[KindConfig, Tag("__none__")]]
    return Annotated[
        Union[tuple(members)],  # noqa: UP007 - a runtime-built union
        Discriminator(
            kind_of,
            custom_error_type="unknown_kind",
            custom_error_message=f"unknown {what} kind; valid kinds: {valid}",
            custom_error_context={"valid": valid, "what": what},
        ),
    ]


class RootBase(Strict):
    """The root of a loaded config; remembers the file it came from."""

    _source: str = PrivateAttr(default="")

    @property
    def source(self) -> str:
        return self._source


@lru_cache(maxsize=1)
def root_model() -> type[RootBase]:
    """Build the root config model from the registries (once, on first use)."""
    from ragmon.alerts.config import AlertsConfig
    from ragmon.monitor.embedders import EMBEDDER_KINDS
    from ragmon.monitor.targets import TARGET_KINDS
    from ragmon.probes import PROBE_KINDS

    return create_model(
        "RagmonConfig",
        __base__=RootBase,
        store=(StoreConfig, StoreConfig()),
        server=(ServerConfig, ServerConfig()),
        logging=(LoggingConfig, LoggingConfig()),
        scheduler=(SchedulerConfig, SchedulerConfig()),
        embedders=(dict[str, kinded_union("embedder", EMBEDDER_KINDS)], {}),  # type: ignore[valid-type]
        targets=(dict[str, kinded_union("target", TARGET_KINDS)], {}),  # type: ignore[valid-type]
        golden_sets=(dict[str, GoldenSetConfig], {}),
        probes=(dict[str, kinded_union("probe", PROBE_KINDS)], {}),  # type: ignore[valid-type]
        alerts=(AlertsConfig, AlertsConfig()),
        report=(ReportConfig, ReportConfig()),
    )


__all__ = [
    "ConfigPath", "EmbedderConfig", "GoldenSetConfig", "LoggingConfig",
    "ProbeConfig", "ReportConfig", "SchedulerConfig", "ServerConfig", "StoreConfig",
    "TargetConfig", "kinded_union", "root_model",
]
