"""What changed between the baseline's golden set version and this run's.

A golden query is identified by its id, but it is the same query only while what is
searched is the same: its text (or its precomputed vector) and its filter. The judgments
may be revised separately. So, per id:

- **unchanged**: same query, same judgments: paired with the baseline, and its query
  vector compared with the baseline's (a moved vector there is the embedding pipeline);
- **edited**: the text, vector or filter changed (a reworded question): never paired and
  never compared by vector, since its new vector and results are expected to differ;
- **rejudged**: the same query with revised judgments: its vector is still compared, its
  labelled results are not paired;
- **added** and **removed**.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

#: Query ids named per list in a run's evidence; the counts are always complete.
NAMED = 20


def query_identity(content: dict[str, Any]) -> str:
    """A digest of what is searched: the text, or the vector, and the filter."""
    searched = {"query": content.get("query"), "vector": content.get("vector"),
                "filter": content.get("filter")}
    blob = json.dumps(searched, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _judgments(content: dict[str, Any]) -> list[Any]:
    return sorted((str(d), float(g)) for d, g in (content.get("relevant") or {}).items())


@dataclass
class GoldenDiff:
    """Query ids per kind of change, each list sorted."""

    unchanged: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    rejudged: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def same_query(self) -> set[str]:
        """Ids whose query is unchanged (judgments may differ): their vectors compare."""
        return {*self.unchanged, *self.rejudged}

    def summary(self) -> dict[str, Any]:
        """Counts and the first :data:`NAMED` ids of each change, for the run's evidence."""
        out: dict[str, Any] = {"unchanged": len(self.unchanged)}
        for kind in ("edited", "rejudged", "added", "removed"):
            ids = getattr(self, kind)
            out[kind] = {"count": len(ids), "ids": ids[:NAMED]}
        return out


def diff_golden(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> GoldenDiff:
    """Compare two versions given as :meth:`GoldenSet.to_json` rows."""
    old = {str(r["id"]): r for r in before}
    new = {str(r["id"]): r for r in after}
    out = GoldenDiff()
    for qid in sorted(new):
        if qid not in old:
            out.added.append(qid)
        elif query_identity(old[qid]) != query_identity(new[qid]):
            out.edited.append(qid)
        elif _judgments(old[qid]) != _judgments(new[qid]):
            out.rejudged.append(qid)
        else:
            out.unchanged.append(qid)
    out.removed = sorted(set(old) - set(new))
    return out


def describe(summary: dict[str, Any]) -> str:
    """``1 edited (q01), 2 added (q98, q99)``: the changes of a :meth:`GoldenDiff.summary`."""
    parts = []
    for kind in ("edited", "rejudged", "added", "removed"):
        entry = summary.get(kind) or {"count": 0, "ids": []}
        if entry["count"]:
            parts.append(f"{entry['count']} {kind} ({name_list(entry['ids'], entry['count'])})")
    return ", ".join(parts) or "no query changed (tags or order only)"


def name_list(names: list[str], total: int, shown: int = 5) -> str:
    """The first ``shown`` names, and how many more there are."""
    head = ", ".join(names[:shown])
    return head if total <= shown else f"{head} and {total - shown} more"
