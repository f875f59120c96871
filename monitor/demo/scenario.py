"""What the demo watches beyond the canary: added as the probe and target kinds exist.

``extend_config`` adds sections to the demo config; ``prepare`` builds what they point at
(the FAISS index of the standard-library corpus, the golden set) in the data folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def extend_config(config: dict[str, Any], data_dir: Path) -> None:
    """Add targets and probes for the kinds this install has (none beyond the canary yet)."""


def prepare(config: Any, data_dir: Path, out: Any) -> None:
    """Build the files the extended config points at."""
