"""The seams between the foundation (``ragmon.monitor``) and the features.

The foundation imports no feature. The composition root (``ragmon.monitor.app``) imports
every feature and hands the foundation one :class:`Plugins` value: the typed registries of
each kind and the features' config sections, config checks, CLI commands, daemon extensions
and tables. Nothing is looked up by module name, so a renamed feature module is an
ImportError in the composition root, never a feature silently left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from ragmon.monitor.errors import ConfigIssue
from ragmon.monitor.kinds import KindSpec, Registry
from ragmon.monitor.probe import MetricSpec, Probe
from ragmon.monitor.store.retention import RetentionPart

if TYPE_CHECKING:
    from ragmon.monitor.cli import CommandGroups
    from ragmon.monitor.config import RootConfig
    from ragmon.monitor.daemon import Daemon
    from ragmon.monitor.embedders import Embedder
    from ragmon.monitor.targets import VectorTarget


class Closeable(Protocol):
    """What an installed extension may return: closed at shutdown, before the store."""

    def close(self, wait: bool = ...) -> None: ...


class DaemonExtension(Protocol):
    """Installed into a starting daemon after its store, context, runner and scheduler exist
    and before the scheduler starts; it may add after-run hooks, jobs and HTTP routes."""

    def __call__(self, daemon: Daemon) -> Closeable | None: ...


class CommandModule(Protocol):
    """Adds ``ragmon`` subcommands; each sets ``func(args) -> int`` on its parser."""

    def __call__(self, cli: CommandGroups) -> None: ...


class ConfigCheck(Protocol):
    """A cross-section check of a parsed (raw) config, run by ``check-config`` and at load:
    for example an alert rule naming a probe that is not configured."""

    def __call__(
        self, raw: dict[str, Any], source: str, plugins: Plugins
    ) -> list[ConfigIssue]: ...


class FileCheck(Protocol):
    """A check of a loaded config against the files it names (a golden set must parse, an
    index file must exist), run by ``ragmon check-config`` only, never at load: a file may
    appear after the config is written (a volume mounted later), and a daemon reports it as
    a failed run meanwhile. A file that is not there is a warning (``ConfigIssue.warning``);
    ``check-config --strict`` makes it an error."""

    def __call__(self, config: RootConfig) -> list[ConfigIssue]: ...


@dataclass(frozen=True)
class Section:
    """A top-level config section a feature owns (``alerts:``)."""

    model: type[BaseModel]
    description: str = ""


@dataclass(frozen=True)
class Plugins:
    """Everything the composition root passes into the foundation."""

    probes: Registry[Probe]
    targets: Registry[VectorTarget]
    embedders: Registry[Embedder]
    sections: Mapping[str, Section] = field(default_factory=dict)
    config_checks: Sequence[ConfigCheck] = ()
    file_checks: Sequence[FileCheck] = ()
    commands: Sequence[CommandModule] = ()
    extensions: Sequence[DaemonExtension] = ()
    #: The features' shares of retention (what each keeps whatever its age, what of its own
    #: history it deletes), for a loaded config. The daemon's retention job always uses
    #: them: a pinned baseline must never depend on an optional extension being installed.
    retention: Callable[[RootConfig], Sequence[RetentionPart]] | None = None
    #: Feature registries of the same shape that the foundation does not consume (alert
    #: sinks, drift methods): listed so that every kind is introspectable in one place.
    other_kinds: Mapping[str, Registry[Any]] = field(default_factory=dict)

    def metric_specs(self) -> dict[str, Mapping[str, MetricSpec]]:
        """Exported values of each probe kind: ``{kind: {name: MetricSpec}}``."""
        return {name: _probe_class(spec).METRICS for name, spec in self.probes.items()}

    def with_probe_kind(self, spec: KindSpec[Probe]) -> Plugins:
        """A copy with one more probe kind (tests add their own kinds this way)."""
        from dataclasses import replace

        return replace(self, probes=self.probes.with_spec(spec))


def probe_spec(probe: type[Probe], extra: str | None = None,
               requires: tuple[str, ...] = ()) -> KindSpec[Probe]:
    """The registry entry of a probe class (its ``kind``, ``Config`` and constructor)."""
    return KindSpec(probe.kind, probe, probe.Config, extra, requires)


def _probe_class(spec: KindSpec[Probe]) -> type[Probe]:
    factory: Callable[..., Probe] = spec.factory
    if not (isinstance(factory, type) and issubclass(factory, Probe)):
        raise TypeError(f"probe kind {spec.name!r}: the factory must be a Probe subclass")
    return factory


__all__ = [
    "Closeable", "CommandModule", "ConfigCheck", "DaemonExtension", "FileCheck", "Plugins",
    "Section",
    "probe_spec",
]
