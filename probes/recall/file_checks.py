"""What ``ragmon check-config`` checks offline in the files a recall set-up reads.

Golden sets are parsed with the probe's own loader, so a file that would fail every run
fails the check instead, with its line. A file that is not there (a golden set, a FAISS
index or its ids file) is a warning: it may appear later, on a volume mounted after the
config was written, and until then the probes that read it fail with the reason.
``check-config --strict`` turns those warnings into errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragmon.monitor.config import RootConfig
from ragmon.monitor.errors import ConfigIssue, GoldenSetError
from ragmon.probes.recall.golden import load_golden_set


def _missing(source: str, key: str, path: Path) -> ConfigIssue:
    return ConfigIssue(source, key, f"file {str(path)!r} does not exist (yet?): the probes "
                       "that use it fail until it appears", warning=True)


def _golden_files(gs: Any) -> list[tuple[str, Path]]:
    """(key, file) of every file a golden set is read from."""
    if gs.format == "beir":
        return [("path", Path(gs.path) / "queries.jsonl"),
                ("path", Path(gs.path) / "qrels" / f"{gs.split}.tsv")]
    files = [("path", Path(gs.path))]
    if gs.queries is not None:
        files.append(("queries", Path(gs.queries)))
    return files


def golden_set_issues(config: RootConfig) -> list[ConfigIssue]:
    """Each golden set parses; a file that is not there is a warning."""
    source = config.source or "config"
    issues = []
    for name, gs in config.golden_sets.items():
        missing = [_missing(source, f"golden_sets.{name}.{key}", file)
                   for key, file in _golden_files(gs) if not file.exists()]
        if missing:
            issues += missing
            continue
        try:
            load_golden_set(name, gs)
        except GoldenSetError as exc:
            issues.append(ConfigIssue(source, f"golden_sets.{name}", str(exc)))
    return issues


def index_file_issues(config: RootConfig) -> list[ConfigIssue]:
    """A FAISS target's index file (and ids file) that is not there is a warning."""
    source = config.source or "config"
    issues = []
    for name, target in config.targets.items():
        if target.kind != "faiss":
            continue
        for key in ("path", "ids_path"):
            path = getattr(target, key, None)
            if path is not None and not Path(path).exists():
                issues.append(_missing(source, f"targets.{name}.{key}", Path(path)))
    return issues


def file_issues(config: RootConfig) -> list[ConfigIssue]:
    """The file check the composition root registers: golden sets, then index files."""
    return golden_set_issues(config) + index_file_issues(config)
