"""What ``ragmon check-config`` says about target settings that cannot take effect."""

from __future__ import annotations

from ragmon.monitor.config import RootConfig
from ragmon.monitor.errors import ConfigIssue


def target_issues(config: RootConfig) -> list[ConfigIssue]:
    """A warning for each setting a target ignores: Qdrant's local mode (``path``) searches
    by brute force, so ``hnsw_ef`` has no effect and live search is already exact."""
    source = config.source or "config"
    issues = []
    for name, target in config.targets.items():
        if (target.kind == "qdrant" and getattr(target, "path", None) is not None
                and getattr(target, "hnsw_ef", None) is not None):
            issues.append(ConfigIssue(
                source, f"targets.{name}.hnsw_ef",
                "has no effect in Qdrant local mode (path): the local client always searches "
                "by brute force, so live search is exact and index fidelity is not "
                "measurable; remove hnsw_ef, or use url to monitor a Qdrant server",
                warning=True))
    return issues
