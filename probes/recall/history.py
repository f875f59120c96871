"""What a recall run reads from and writes to the store besides its own run row.

- **Baselines.** A pinned run (``ragmon baseline pin RUN_ID``, newest pin wins) while the
  golden set is the version it was pinned on, or has no eligible run since the pin; else
  the probe's first run with a baseline-eligible verdict on the current golden set version
  (after the pin, if there is one); else (the golden set changed) the newest eligible run
  of any version. Across versions, only the queries both share unchanged are compared
  (:mod:`probes.recall.golden_diff`).
- **Reference vectors.** The query vectors and golden document vectors of a run are kept
  as reference samples, but only when they differ from the newest stored ones (a digest
  decides), so steady runs add no rows; each run's details name the samples it used, so a
  baseline's vectors are always found.
- **Golden set versions.** Every version that loaded cleanly: for ``keep_last_good``, and
  to tell which queries an edit changed since the baseline's version.
- **Retention** (:class:`RecallRetention`). A pinned baseline's run, and the reference
  samples it names, are kept whatever their age; without a pin the baseline is the first
  eligible run still within ``store.retention``.

Finding the baseline costs the same at any history size: the pin is the newest row of
``recall_baselines``, and the first (newest) eligible run is found by walking the
``(probe, instance, golden_version, status, id)`` (``(probe, instance, status, id)``)
index, with the verdict read in SQL, through at most ``SCAN`` successful runs.

Everything here is kept per (probe, instance): a sidecar's baseline, pins and reference
vectors are its own (``store.instance``; "" for standalone replicas, who share them). A
sidecar that has no baseline yet (a pod a rollout just created) compares with the fleet's
(:func:`fleet_baseline`).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from ragmon.monitor.errors import RagmonError
from ragmon.monitor.store import Store, index_prefix, insert_ignore
from ragmon.monitor.store.models import ProbeRun, QueryResult
from ragmon.monitor.store.retention import Keep, RetentionJob, RetentionPart
from ragmon.probes.recall.golden import GoldenSet
from ragmon.probes.recall.tables import GoldenSetVersion, RecallBaseline
from ragmon.probes.references import ReferenceSample, save_reference

#: Verdicts after which a run may serve as the automatic baseline.
ELIGIBLE_VERDICTS = ("healthy", "golden-set-changed")
QUERY_SOURCE = "recall-queries"
DOC_SOURCE = "recall-docs"
#: At most this many successful runs are looked through for an eligible automatic baseline.
SCAN = 500


@dataclass
class Baseline:
    run: ProbeRun
    how: str  # "pinned", "first healthy run", "previous golden set version"
    rows: dict[str, dict[str, Any]]
    #: The instance whose baseline this is, when not this one's (see :func:`fleet_baseline`).
    from_instance: str | None = None


def find_baseline(store: Store, probe: str, golden_version: str,
                  instance: str | None = None) -> Baseline | None:
    """The run this run compares with (see the module docstring and docs/recall.md).

    A pin is the baseline of the golden set version it was taken on. After an edit of the
    golden set, the pinned run is compared on the queries both versions share, and the
    first eligible run of the new version started after the pin replaces it: an edit never
    keeps a probe on ``golden-set-changed`` for good, and the pin is never older than the
    last edit that followed it. A sidecar with no baseline of its own gets the fleet's
    (:func:`fleet_baseline`); with ``instance``, only that instance's is looked for."""
    own = instance is None
    instance = store.instance if instance is None else instance
    key = (probe, instance)  # each sidecar compares with its own runs
    with store.session() as s:
        pin = s.scalars(
            select(RecallBaseline).where(RecallBaseline.probe == probe,
                                         RecallBaseline.instance == instance)
            .order_by(RecallBaseline.pinned_at.desc(), RecallBaseline.id.desc()).limit(1)
        ).first()
        run: ProbeRun | None = s.get(ProbeRun, pin.run_id) if pin else None
        how = "pinned"
        if pin is not None and run is not None and run.golden_version != golden_version:
            after = _first_run_since(s, key, pin.pinned_at)
            later = None if after is None else _first_eligible(s, key, golden_version, after)
            if later is not None:
                run, how = later, "first healthy run after the pin"
        if run is None:
            how = "first healthy run"
            run = _first_eligible(s, key, golden_version)
        if run is None:
            how = "previous golden set version"
            run = _newest_eligible(s, key)
    if run is None:
        return fleet_baseline(store, probe, golden_version) if own and instance else None
    return Baseline(run, how, query_rows(store, run))


def fleet_baseline(store: Store, probe: str, golden_version: str) -> Baseline | None:
    """The baseline of a sidecar with none of its own: the fleet's, so that a pod a rollout
    just created compares its first runs with what the fleet measured before the rollout
    (:func:`ragmon.probes.references.fleet_reference` says why). It is the newest pin of any
    other instance, else the instance of the newest eligible run on this golden set version
    (of any version, failing that) and that instance's baseline. The sidecar's own first
    eligible run then becomes its baseline, as usual."""
    with store.session() as s:
        other = (RecallBaseline.probe == probe, RecallBaseline.instance != store.instance)
        source = s.scalar(select(RecallBaseline.instance).where(*other)
                          .order_by(RecallBaseline.pinned_at.desc(),
                                    RecallBaseline.id.desc()).limit(1))
        for version in (golden_version, None):
            if source is not None:
                break
            where = [ProbeRun.probe == probe, ProbeRun.instance != store.instance,
                     ProbeRun.status == "ok",
                     ProbeRun.details["verdict"].as_string().in_(ELIGIBLE_VERDICTS)]
            if version is not None:
                where.append(ProbeRun.golden_version == version)
            source = s.scalar(select(ProbeRun.instance).where(*where)
                              .order_by(ProbeRun.id.desc()).limit(1))
    if source is None:
        return None
    found = find_baseline(store, probe, golden_version, instance=source)
    if found is not None:
        found.from_instance = source
    return found


def _first_run_since(s: Any, probe: tuple[str, str], since: datetime) -> int | None:
    """The id of the first run of ``probe`` (name, instance) started at or after ``since``
    (index on started_at)."""
    found: int | None = s.scalar(
        select(ProbeRun.id).where(ProbeRun.probe == probe[0], ProbeRun.instance == probe[1],
                                  ProbeRun.started_at >= since)
        .order_by(ProbeRun.started_at.asc()).limit(1))
    return found


def _first_eligible(s: Any, probe: tuple[str, str], version: str,
                    low: int | None = None) -> ProbeRun | None:
    """The first eligible run among the first ``SCAN`` successful runs of ``version`` (with
    an id of at least ``low``)."""
    key = (ProbeRun.probe, ProbeRun.instance, ProbeRun.golden_version, ProbeRun.status)
    return _eligible_run(s, key, (*probe, version, "ok"), newest=False, low=low)


def _newest_eligible(s: Any, probe: tuple[str, str]) -> ProbeRun | None:
    """The newest eligible run among the newest ``SCAN`` successful runs of any version."""
    key = (ProbeRun.probe, ProbeRun.instance, ProbeRun.status)
    return _eligible_run(s, key, (*probe, "ok"), newest=True)


def _eligible_run(s: Any, key: tuple[InstrumentedAttribute[Any], ...], values: tuple[str, ...],
                  newest: bool, low: int | None = None) -> ProbeRun | None:
    """Walk the index on ``key + (id,)`` from the oldest (newest) run whose key is
    ``values``: the SCAN-th one bounds the walk (read from the index alone), and the verdict
    is read in SQL, so only the eligible run is loaded."""
    # The index, not the primary key (see index_prefix); the bound is part of the range.
    order = [c.desc() if newest else c.asc() for c in (*key, ProbeRun.id)]
    start = {} if low is None else {"low": low}
    edge = s.scalar(select(ProbeRun.id).where(index_prefix(key, values, ProbeRun.id, **start))
                    .order_by(*order).offset(SCAN - 1).limit(1))
    bounds = dict(start)
    if edge is not None:
        bounds["low" if newest else "high"] = edge
    run_id = s.scalar(select(ProbeRun.id).where(
        index_prefix(key, values, ProbeRun.id, **bounds),
        ProbeRun.details["verdict"].as_string().in_(ELIGIBLE_VERDICTS),
    ).order_by(*order).limit(1))
    return None if run_id is None else s.get(ProbeRun, run_id)


#: The query rows of recently read runs, per store. A stored run's rows never change (they
#: go only with the run), and each run of a probe reads its baseline's: 20 to 40 ms of a
#: 1,000-query run's own work. Callers only read them.
_ROWS: weakref.WeakKeyDictionary[Store, OrderedDict[tuple[int, datetime],
                                                    dict[str, dict[str, Any]]]] = \
    weakref.WeakKeyDictionary()
_ROWS_KEPT = 8  # runs per store
_ROWS_LOCK = threading.Lock()


def query_rows(store: Store, run: ProbeRun) -> dict[str, dict[str, Any]]:
    """The query rows of ``run`` by query id (shared: read, never change them). The run's
    start time is part of the key, so an id a database gives again is never mistaken."""
    key = (run.id, run.started_at)
    with _ROWS_LOCK:
        kept = _ROWS.setdefault(store, OrderedDict())
        if key in kept:
            kept.move_to_end(key)
            return kept[key]
    run_id = run.id
    with store.session() as s:
        rows = s.scalars(select(QueryResult).where(QueryResult.run_id == run_id)).all()
        found = {r.query_id: dict(r.data or {}) for r in rows}
    with _ROWS_LOCK:
        kept[key] = found
        while len(kept) > _ROWS_KEPT:
            kept.popitem(last=False)
    return found


def pin_baseline(store: Store, run_id: int, note: str | None = None) -> ProbeRun:
    """Pin ``run_id`` as its probe's baseline; only a successful recall run can be one."""
    with store.session() as s:
        run = s.get(ProbeRun, run_id)
        if run is None:
            raise RagmonError(f"no run with id {run_id} in store {store.safe_url}")
        if run.kind != "recall":
            raise RagmonError(
                f"run {run_id} is a {run.kind!r} run of probe {run.probe!r}; only recall runs "
                "can be pinned as a recall baseline"
            )
        if run.status != "ok":
            raise RagmonError(
                f"run {run_id} of probe {run.probe!r} has status {run.status!r}; pin a "
                "successful run"
            )
        # The pin belongs to the instance that ran it, whichever daemon's CLI pins it.
        s.add(RecallBaseline(probe=run.probe, instance=run.instance, run_id=run.id,
                             pinned_at=datetime.now(UTC), note=note))
        return run


class RecallRetention(RetentionPart):
    """Recall's share of retention: the run of every pinned baseline is kept whatever its
    age (``recall_baselines`` would lose the pin with it, and later runs would compare
    against whichever healthy run came first), and so are the reference samples it names."""

    name = "recall"

    def keep(self, model: type[Any], job: RetentionJob) -> list[Keep]:
        if model is ProbeRun:
            return [("run(s) pinned as a recall baseline",
                     ProbeRun.id.in_(select(RecallBaseline.run_id)))]
        if model is ReferenceSample:
            ids = pinned_samples(job.store)
            return [("reference sample(s) of a pinned recall baseline",
                     ReferenceSample.id.in_(ids))] if ids else []
        return []


def pinned_samples(store: Store) -> list[int]:
    """The reference samples named by the runs of pinned baselines."""
    with store.session() as s:
        details = s.scalars(select(ProbeRun.details).where(
            ProbeRun.id.in_(select(RecallBaseline.run_id)))).all()
    ids = {ref for d in details for ref in ((d or {}).get("references") or {}).values()}
    return sorted(int(i) for i in ids if isinstance(i, int))


# -- reference vectors ---------------------------------------------------------------------

def vectors_digest(ids: list[str], vectors: np.ndarray) -> str:
    h = hashlib.sha256("\0".join(ids).encode())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()[:32]


#: The last (ids, vectors, digest) of each (probe, source): a run whose vectors equal the
#: last run's (the usual case) compares them (a memory compare) instead of hashing them
#: again (sha256 over 4,000 x 384 floats: ~4 ms a run).
_DIGESTS: dict[tuple[str, str], tuple[list[str], np.ndarray, str]] = {}


def _digest(probe: str, source: str, ids: list[str], vectors: np.ndarray) -> str:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    last = _DIGESTS.get((probe, source))
    if last is not None and last[0] == ids and last[1].shape == vectors.shape \
            and np.array_equal(last[1].view(np.uint32), vectors.view(np.uint32)):  # bitwise
        return last[2]
    digest = vectors_digest(ids, vectors)
    _DIGESTS[(probe, source)] = (list(ids), vectors.copy(), digest)
    return digest


def keep_reference(
    store: Store, probe: str, source: str, fingerprint: str, ids: list[str], vectors: np.ndarray
) -> int | None:
    """The id of a stored sample equal to (ids, vectors): the newest one, or a new one."""
    if len(ids) == 0:
        return None
    digest = _digest(probe, source, ids, vectors)
    with store.session() as s:
        newest = s.execute(
            select(ReferenceSample.id, ReferenceSample.details)
            .where(ReferenceSample.probe == probe, ReferenceSample.instance == store.instance,
                   ReferenceSample.source == source)
            .order_by(ReferenceSample.id.desc()).limit(1)
        ).first()
    if newest is not None and (newest.details or {}).get("digest") == digest:
        return int(newest.id)
    return save_reference(store, probe, source, fingerprint, vectors, ids,
                                details={"digest": digest})


def load_reference(store: Store, reference_id: int | None) -> dict[str, np.ndarray]:
    """id -> vector of a stored sample (empty when it is gone or was never taken)."""
    if reference_id is None:
        return {}
    with store.session() as s:
        row = s.get(ReferenceSample, reference_id)
        if row is None:
            return {}
        vectors = np.frombuffer(row.vectors, dtype=np.float32).reshape(row.n, row.dimension)
        return {str(i): vectors[n] for n, i in enumerate(row.item_ids)}


# -- golden set versions -------------------------------------------------------------------

def remember_golden(store: Store, golden: GoldenSet) -> None:
    """Keep this version of the golden set (once, however many replicas load it at once)."""
    with store.session() as s:
        insert_ignore(s, GoldenSetVersion, dict(
            name=golden.name, version=golden.version, source=golden.source,
            created_at=datetime.now(UTC), queries=golden.to_json(),
        ), ["name", "version"])


def golden_rows(store: Store, name: str, version: str) -> list[dict[str, Any]] | None:
    """The queries of a stored version of a golden set (None: that version was never kept)."""
    with store.session() as s:
        rows = s.scalar(select(GoldenSetVersion.queries).where(
            GoldenSetVersion.name == name, GoldenSetVersion.version == version))
    return None if rows is None else list(rows)


def last_good_golden(store: Store, name: str) -> GoldenSet | None:
    with store.session() as s:
        row = s.scalars(select(GoldenSetVersion).where(GoldenSetVersion.name == name)
                        .order_by(GoldenSetVersion.id.desc()).limit(1)).first()
        if row is None:
            return None
        return GoldenSet.from_json(name, row.source, list(row.queries))
