"""The composition root: the one module that imports every feature.

The foundation (everything else under ``ragmon.monitor``) defines interfaces and generic
machinery and imports no feature; a test walks the import graph to keep it so. This
module assembles the features (probe kinds, alerts, drift ingest, their CLI commands,
config sections and tables) into one :class:`~ragmon.monitor.plugins.Plugins` value and
passes it in: ``load_config(path, plugins)``, ``Runner(..., plugins.probes)``,
``StoreCollector(..., plugins.metric_specs())``, ``Daemon(config)`` (the config carries the
plugins it was validated with). The console script ``ragmon`` (``ragmon.monitor.__main__``)
installs its early signal handlers, then calls :func:`main` here.

Adding a feature means listing its parts below; nothing is found by module name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData

from ragmon.alerts import cli as alerts_cli
from ragmon.alerts import runtime as alerts_runtime
from ragmon.alerts import tables as alerts_tables
from ragmon.alerts.config import AlertsConfig, reference_issues
from ragmon.alerts.report import cli as report_cli
from ragmon.alerts.report import runtime as report_runtime
from ragmon.alerts.report import tables as report_tables
from ragmon.alerts.report.config import ReportConfig
from ragmon.alerts.sinks import SINK_KINDS
from ragmon.monitor import cli
from ragmon.monitor.config import RootConfig
from ragmon.monitor.config import load_config as _load_config
from ragmon.monitor.config import validate_raw as _validate_raw
from ragmon.monitor.embedders import EMBEDDER_KINDS
from ragmon.monitor.kinds import Registry
from ragmon.monitor.plugins import Plugins, Section, probe_spec
from ragmon.monitor.store.claims import SlotRetention
from ragmon.monitor.store.models import Base
from ragmon.monitor.store.retention import RetentionPart
from ragmon.monitor.targets import TARGET_KINDS
from ragmon.monitor.targets import checks as target_checks
from ragmon.probes import references
from ragmon.probes.canary import CanaryProbe
from ragmon.probes.drift import cli as drift_cli
from ragmon.probes.drift import ingest as drift_ingest
from ragmon.probes.drift import state as drift_state
from ragmon.probes.drift import tables as drift_tables
from ragmon.probes.drift.methods import DRIFT_METHODS
from ragmon.probes.drift.probe import DriftProbe
from ragmon.probes.recall import cli as recall_cli
from ragmon.probes.recall import file_checks as recall_file_checks
from ragmon.probes.recall import history as recall_history
from ragmon.probes.recall import tables as recall_tables
from ragmon.probes.recall.probe import RecallProbe

if TYPE_CHECKING:
    pass

#: Modules whose SQLAlchemy tables make up the schema, beside the foundation's own
#: (``ragmon.monitor.store.models``). Alembic's env and the model-vs-DDL test use them.
TABLE_MODULES = (references, recall_tables, drift_tables, alerts_tables, report_tables)


@cache
def default_plugins() -> Plugins:
    """Every feature of this install, assembled once."""
    return Plugins(
        probes=Registry("probe", [
            probe_spec(CanaryProbe), probe_spec(DriftProbe), probe_spec(RecallProbe),
        ]),
        targets=TARGET_KINDS,
        embedders=EMBEDDER_KINDS,
        sections={"alerts": Section(AlertsConfig, "in-daemon alert rules and sinks"),
                  "report": Section(ReportConfig, "the weekly report by email")},
        config_checks=(reference_issues,),
        file_checks=(recall_file_checks.file_issues, target_checks.target_issues),
        commands=(alerts_cli.add_commands, recall_cli.add_commands, drift_cli.add_commands,
                  report_cli.add_commands),
        extensions=(alerts_runtime.install, drift_ingest.install, report_runtime.install),
        retention=retention_parts,
        other_kinds={"sink": SINK_KINDS, "drift method": DRIFT_METHODS},
    )


def retention_parts(config: RootConfig) -> tuple[RetentionPart, ...]:
    """The features' shares of the store's retention: what each keeps whatever its age (a
    pinned recall baseline's run and samples, a rolling drift reference's windows) and the
    history each deletes (drift statistics, reference samples)."""
    return (recall_history.RecallRetention(), drift_state.DriftRetention.for_probes(config.probes),
            references.ReferenceRetention(), SlotRetention())


def metadata() -> MetaData:
    """The whole schema's metadata: the foundation's tables and every feature's (the
    modules in ``TABLE_MODULES``, imported above, put theirs on the shared ``Base``)."""
    return Base.metadata


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None,
    plugins: Plugins | None = None,
) -> RootConfig:
    """Load a config file against this install's plugins (or the ones given)."""
    return _load_config(path, plugins or default_plugins(), environ)


def validate_raw(
    raw: dict[str, Any], source: str, base_dir: Path,
    origins: dict[tuple[str, ...], str] | None = None, plugins: Plugins | None = None,
) -> RootConfig:
    """Validate a parsed config against this install's plugins (or the ones given)."""
    return _validate_raw(raw, source, base_dir, plugins or default_plugins(), origins)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``ragmon`` console script."""
    return cli.main(argv, default_plugins())


if __name__ == "__main__":
    raise SystemExit(main())
