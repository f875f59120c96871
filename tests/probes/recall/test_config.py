"""The recall probe's config section, through ragmon's strict loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ragmon.monitor.app import load_config
from ragmon.monitor.errors import ConfigError

GOLDEN = Path(__file__).parent / "data" / "stdlib_golden.jsonl"


def load(tmp_path: Path, probe: dict) -> object:
    (tmp_path / "docs.faiss").write_bytes(b"")
    config = {
        "store": {"url": f"sqlite:///{tmp_path / 'r.db'}"},
        "targets": {"docs": {"kind": "faiss", "path": "docs.faiss"}},
        "golden_sets": {"stdlib": {"path": str(GOLDEN)}},
        "probes": {"docs-recall": {"kind": "recall", "target": "docs", "golden_set": "stdlib",
                                   **probe}},
    }
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_config(str(path))


def test_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, {}).probes["docs-recall"]  # type: ignore[attr-defined]
    assert cfg.k == [1, 5, 10, 20] and cfg.decision_k == 10 and cfg.gain == "linear"
    cfg = load(tmp_path, {"k": [20, 3, 3]}).probes["docs-recall"]  # type: ignore[attr-defined]
    assert cfg.k == [3, 20] and cfg.decision_k == 20
    assert cfg.documents is None
    cfg = load(tmp_path, {"documents": {"pattern": r"(?P<doc>.+)#\d+"}}).probes["docs-recall"]  # type: ignore[attr-defined]
    assert cfg.documents.pattern == r"(?P<doc>.+)#\d+" and cfg.documents.max_depth == 10


@pytest.mark.parametrize(("probe", "message"), [
    ({"verdict_k": 7}, "probes.docs-recall.verdict_k: must be one of k [1, 5, 10, 20], got 7"),
    ({"k": [0, 5]}, "probes.docs-recall.k: every k must be a positive integer, got [0, 5]"),
    ({"golden_set": "nope"}, "probes.docs-recall.golden_set: "),
    ({"gain": "log"}, "probes.docs-recall.gain: Input should be 'linear' or 'exponential', "
     "got 'log'"),
    ({"alpha": 1.5}, "probes.docs-recall.alpha: Input should be less than 1, got 1.5"),
    ({"surprise": 1}, "probes.docs-recall.surprise: unknown key"),
    ({"documents": {"pattern": r"(.+)#\d+"}}, "probes.docs-recall.documents.pattern: the "
     "pattern needs a named group 'doc', like (?P<doc>.+)#\\d+, got '(.+)#\\\\d+'"),
    ({"documents": {"pattern": "(?P<doc>.+"}}, "probes.docs-recall.documents.pattern: not a "
     "valid regular expression (missing ), unterminated subpattern at position 0)"),
    ({"documents": {}}, "probes.docs-recall.documents: give exactly one of 'pattern', "
     "'separator' or 'field' (found none)"),
    ({"documents": {"separator": "#", "field": "page"}}, "probes.docs-recall.documents: give "
     "exactly one of 'pattern', 'separator' or 'field' (found separator, field)"),
    ({"documents": {"separator": ""}}, "probes.docs-recall.documents.separator: String should "
     "have at least 1 character"),
    ({"documents": {"separator": "#", "max_depth": 0}}, "probes.docs-recall.documents."
     "max_depth: Input should be greater than or equal to 1, got 0"),
    ({"documents": {"seperator": "#"}}, "probes.docs-recall.documents.seperator: unknown key"),
])
def test_bad_values_name_the_key(tmp_path: Path, probe: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, probe)
    assert message in str(err.value)
