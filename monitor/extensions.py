"""Optional modules that plug into the CLI and the daemon.

Feature packages (alerts, drift ingest, reports) register themselves by module name in
``monitor.cli.COMMAND_MODULES`` and ``monitor.daemon.DAEMON_EXTENSIONS``; a module that is
not there is skipped, an import error inside one is raised (it is a bug, not an absence).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from types import ModuleType


def optional_modules(names: Iterable[str]) -> Iterator[ModuleType]:
    for name in names:
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Absent: the module itself or a package on its path. Anything else is a bug.
            missing = exc.name or ""
            if not (name == missing or name.startswith(missing + ".")):
                raise
