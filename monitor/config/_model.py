"""The config file's sections. Kinded sections (embedders, targets, probes) take their entry
classes from the registries passed in (``root_model(plugins)``), so adding a kind never
touches this file, and features add their own sections the same way."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from ragmon.monitor.config._types import (
    ConfigPath,
    Duration,
    KindConfig,
    OptionalDelay,
    Secret,
    Strict,
    base_dir,
    config_error,
)

if TYPE_CHECKING:
    from ragmon.monitor.plugins import Plugins

S = TypeVar("S", bound=BaseModel)


class StoreConfig(Strict):
    """Where history lives. SQLite by default; PostgreSQL when several daemons share it."""

    url: Secret = SecretStr("sqlite:///ragmon.db")
    """SQLAlchemy URL: `sqlite:///FILE` (relative to the config file; WAL mode) or
    `postgresql://USER@HOST/DB` (psycopg 3). A secret: literal, `{env: VAR}` or `{file: PATH}`;
    never logged."""
    retention: Duration = 90 * 86400.0
    """History older than this is deleted, in batches: probe runs (with their values and
    query rows), drift statistics and reference windows. Kept whatever their age: the run of
    a pinned recall baseline, pinned references, the newest drift statistic of each probe and
    method (its alarm state) and the reference each probe still uses. A recall run of a
    52-question golden set takes about 120 KB: about 3 GB in 90 days at every 5 minutes
    (README, "Store")."""
    retention_interval: Duration = 3600.0
    """How often retention runs, and the alert outbox is cleaned up with the same
    `retention`. A pass deletes 1,000 runs per transaction, so a backlog is cleared without
    holding the store for long."""
    retention_at_start: bool = True
    """Also run retention (and the alert outbox cleanup) 5 s after start, not only once
    `retention_interval` has passed: a daemon restarted more often still cleans up."""
    migrate_on_start: bool = True
    """Upgrade the schema at start (under an advisory lock on PostgreSQL); when false, refuse to
    start unless the schema is at head."""
    pool_size: int = Field(default=4, ge=1, le=100)
    """PostgreSQL: connections each daemon keeps open. With `max_overflow`, the most one
    daemon opens: R replicas need R x (pool_size + max_overflow) within the server's
    `max_connections` (default 100, of which 3 are kept for superusers): 10 replicas at the
    defaults open at most 80. SQLite ignores it."""
    max_overflow: int = Field(default=4, ge=0, le=100)
    """PostgreSQL: connections opened beyond `pool_size` under load, closed when returned."""
    pool_timeout: Duration = 30.0
    """How long a request waits for a free connection before it fails (a failed run or
    scrape, logged; the daemon keeps running)."""
    statement_timeout: Duration | None = 60.0
    """PostgreSQL: any statement running longer is cancelled by the server (its run or
    scrape fails, the daemon keeps running), so a lock held by a stuck replica or an
    overloaded server cannot hang every replica. `null` for none; migrations are exempt."""

    @field_validator("url", mode="after")
    @classmethod
    def _sqlite_path(cls, url: SecretStr, info: ValidationInfo) -> SecretStr:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        raw = url.get_secret_value()
        try:  # the URL is a secret: the errors below never quote it
            backend = make_url(raw).get_backend_name()
        except ArgumentError:
            raise config_error(
                "store_url", "not a database URL; use sqlite:///PATH or "
                "postgresql://USER@HOST/DB",
            ) from None
        if backend not in ("sqlite", "postgresql"):
            raise config_error(
                "store_url", "ragmon keeps history in SQLite or PostgreSQL, not {backend}; use "
                "sqlite:///PATH or postgresql://USER@HOST/DB", {"backend": repr(backend)},
            )
        if not raw.startswith("sqlite:///") or raw == "sqlite:///:memory:":
            return url
        path = Path(raw.removeprefix("sqlite:///").split("?")[0])
        if not path.is_absolute():
            path = (base_dir(info) / path).resolve()
        if not path.parent.is_dir():
            raise config_error(
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
    threads: int = Field(default=8, ge=1, le=256)
    """Worker threads answering requests (ingest, /metrics, health checks). A slow or idle
    client holds none: one I/O thread buffers each connection until its request is whole."""
    backlog: int = Field(default=1024, ge=16, le=65535)
    """Listen backlog: connections the kernel queues while `connection_limit` are open (Linux
    caps it at `net.core.somaxconn`). A burst waits here instead of being reset."""
    connection_limit: int = Field(default=1000, ge=16, le=100_000)
    """Connections served at once; more wait in the backlog. Each needs a file descriptor: the
    daemon raises its soft open-files limit to fit (up to the hard limit), else serves fewer
    and logs a warning."""
    channel_timeout: Duration = 60.0
    """A connection with no traffic either way for this long is closed (idle keep-alive
    clients, stalled uploads)."""
    request_timeout: Duration = 30.0
    """A request (headers and body) must arrive whole within this of its first byte, or its
    connection is closed: a client trickling its headers cannot hold a connection for long."""
    max_request_bytes: int = Field(default=16 << 20, ge=1024)
    """Largest request body (bytes); a larger one gets 413 before it is read. The ingest
    endpoint also applies each drift probe's own `queries.max_request_bytes`."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise config_error(
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
    replica: str | None = None
    """This daemon's name in the shared schedule, stored on every run it makes (`replica` on
    the run row). Default: `HOST:PID:` and a random suffix, new at every start."""
    claim_grace: Duration = 30.0
    """Replicas sharing a PostgreSQL store claim each slot of a probe's schedule before
    running it; a claim lasts the probe's `jitter` + `timeout` + this. When its replica dies,
    another replica runs the slot after that (at its next fire of the probe)."""


class GoldenSetConfig(Strict):
    """A set of queries with judged relevant documents."""

    path: ConfigPath
    """The golden set file (or BEIR folder), relative to the config file. It may appear after
    the daemon starts (runs fail until then); `ragmon check-config` parses it."""
    format: Literal["ragmon", "beir", "trec"] = "ragmon"
    split: str = "test"
    queries: ConfigPath | None = None
    """The query texts of a TREC golden set (TSV `id<TAB>text`, or JSONL)."""
    keep_last_good: bool = False

    @model_validator(mode="after")
    def _trec_queries(self) -> GoldenSetConfig:
        if self.format == "trec" and self.queries is None:
            raise config_error("trec_queries", "a TREC golden set needs 'queries': a TSV "
                               "(id<TAB>text) or JSONL file", {})
        return self


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
            raise config_error(
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
            raise config_error(
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


class DeploymentConfig(Strict):
    """How this daemon is deployed: one of several `standalone` replicas probing shared
    indexes, or a `sidecar` probing its own pod's index under its own `instance` name
    (docs/architecture.md, "Deployment shapes")."""

    mode: Literal["standalone", "sidecar"] = "standalone"
    """`standalone`: every replica probes the same indexes and shares one history (a shared
    vector service such as pgvector or Qdrant). `sidecar`: the index lives in this pod (a FAISS
    file, a local Chroma); runs, baselines, references, drift windows and alert state are
    kept per `instance`."""
    instance: str | None = None
    """This daemon's name among sidecars: stored on every run and exported as the
    `ragmon_instance` label. Default in `sidecar` mode: `$POD_NAME`, else `$HOSTNAME`;
    in `standalone` mode: empty (no label). Letters, digits, `.`, `_`, `-`, `:`; at most 200."""

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, value: str | None) -> str | None:
        if value is not None and value != "" and not _INSTANCE.fullmatch(value):
            raise config_error(
                "instance", "{value} is not an instance name: use letters, digits, '.', '_', "
                "'-' or ':' (at most 200), like a pod name", {"value": repr(value)})
        return value

    @model_validator(mode="after")
    def _sidecar_name(self) -> DeploymentConfig:
        if self.mode == "sidecar" and not self.instance:
            raise config_error(
                "instance_missing", "mode 'sidecar' needs a name for this pod: set "
                "deployment.instance, or $POD_NAME (the Kubernetes downward API) or $HOSTNAME",
                {})
        return self

    @model_validator(mode="before")
    @classmethod
    def _instance_from_env(cls, data: Any) -> Any:
        import os

        if isinstance(data, dict) and data.get("mode") == "sidecar" and not data.get("instance"):
            name = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME")
            if name:
                return {**data, "instance": name}
        return data

    @property
    def name(self) -> str:
        """The instance stored on runs and state rows ("" for standalone replicas)."""
        return self.instance or ""


_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")


class ReloadConfig(Strict):
    """Config reload without a restart (docs/reload.md): on SIGHUP, and when the config file or
    a golden set file it names changes (a Kubernetes ConfigMap update included)."""

    watch: bool = True
    """Watch the config file and its golden set files for changes; `false`: SIGHUP only."""
    poll: Duration = 5.0
    """How often the watched files are checked (path target, mtime, size, content hash)."""


class RootConfig(Strict):
    """The root of a loaded config. The foundation's sections are typed here; the composition
    root builds the model users load (``root_model(plugins)``), which narrows the kinded
    sections to the registered kinds and adds the features' sections. It remembers the file it
    came from and the plugins it was validated against."""

    store: StoreConfig = StoreConfig()
    server: ServerConfig = ServerConfig()
    logging: LoggingConfig = LoggingConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    embedders: dict[str, EmbedderConfig] = {}
    targets: dict[str, TargetConfig] = {}
    golden_sets: dict[str, GoldenSetConfig] = {}
    probes: dict[str, ProbeConfig] = {}
    reload: ReloadConfig = ReloadConfig()
    deployment: DeploymentConfig = DeploymentConfig()

    _source: str = PrivateAttr(default="")
    _plugins: Any = PrivateAttr(default=None)

    @property
    def source(self) -> str:
        return self._source

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            raise RuntimeError("this config was not validated by root_model(plugins)")
        return self._plugins  # type: ignore[no-any-return]

    def section(self, name: str, model: type[S]) -> S:
        """A feature's section (``config.section("alerts", AlertsConfig)``), typed."""
        value = getattr(self, name, None)
        if not isinstance(value, model):
            raise RuntimeError(f"config section {name!r} is not a {model.__name__}")
        return value


_ROOTS: dict[int, tuple[Plugins, type[RootConfig]]] = {}


def root_model(plugins: Plugins) -> type[RootConfig]:
    """The root config model for these plugins (built once per plugins value)."""
    cached = _ROOTS.get(id(plugins))
    if cached is not None and cached[0] is plugins:
        return cached[1]
    # Field types built at run time from the registries: a dict of (type, default) pairs.
    fields: dict[str, Any] = {
        section: (dict[str, registry.config_union()], {})  # type: ignore[misc]
        for section, registry in (
            ("embedders", plugins.embedders), ("targets", plugins.targets),
            ("probes", plugins.probes),
        )
    }
    fields.update({name: (section.model, section.model())
                   for name, section in plugins.sections.items()})
    model = create_model("RagmonConfig", __base__=RootConfig, **fields)
    _ROOTS[id(plugins)] = (plugins, model)
    return model


__all__ = [
    "ConfigPath", "DeploymentConfig", "EmbedderConfig", "GoldenSetConfig", "LoggingConfig",
    "ProbeConfig", "ReloadConfig", "SchedulerConfig", "ServerConfig", "StoreConfig",
    "RootConfig", "TargetConfig", "root_model",
]
