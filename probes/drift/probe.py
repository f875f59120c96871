"""The drift probe kind: one source of embeddings (query traffic, the index, canaries)
compared with a stored reference window by the registered methods, with calibrated alarms.

Phases of a run: take the current window; find the reference (pinned, or the rolling
history), capturing one when there is none; refuse windows of different embedding
pipelines; while the reference pool is filling, add the window to it; run each method;
judge the deciding method against the reference's own simulated null at the calibrated
per-window alpha and advance its persistence rule (the others explain); coverage of the
index for query traffic; store and export.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ragmon.monitor.common import jsonable
from ragmon.monitor.errors import DriftError, FingerprintMismatch, InsufficientData
from ragmon.monitor.probe import Deadline, MetricSpec, Probe, ProbeResult
from ragmon.probes.drift import alarms, pool, state
from ragmon.probes.drift.config import DriftConfig
from ragmon.probes.drift.ingest import check_dimensions, poll_jsonl
from ragmon.probes.drift.methods import DRIFT_METHODS, MethodResult, coverage
from ragmon.probes.drift.records import as_float, cluster_rows, nearest_distances
from ragmon.probes.drift.render import render_result
from ragmon.probes.drift.tables import DriftClusterShift, DriftStatistic
from ragmon.probes.references import Reference, save_reference

LABELS = ("source", "method")


def window_seed(seed: int, probe: str, window: datetime) -> int:
    """The random seed of one window's resampling: fixed by the configured seed, the probe and
    the window, so a run can be reproduced and two probes never share permutations."""
    key = f"{seed}:{probe}:{window.isoformat()}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big")


@dataclass
class CurrentWindow:
    """The window under test, with what produced it."""

    vectors: np.ndarray
    fingerprint: str
    start: datetime | None
    end: datetime
    texts: list[str | None] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    seen: int = 0
    bad_lines: int = 0


#: Example gap queries kept with each coverage result (the farthest from the index).
GAP_EXAMPLES = 5


def gap_examples(distances: np.ndarray, bar: float, current: CurrentWindow
                 ) -> list[dict[str, object]]:
    """The current window's queries farthest beyond the coverage bar, with their text (what
    the knowledge base lacks, in the users' words); queries sent without text are skipped."""
    order = np.argsort(-np.asarray(distances))
    out: list[dict[str, object]] = []
    for i in order.tolist():
        if distances[i] <= bar or len(out) == GAP_EXAMPLES:
            break
        text = current.texts[i] if i < len(current.texts) else None
        if text:
            ident = current.ids[i] if i < len(current.ids) else None
            out.append({"id": ident, "text": text, "distance": float(distances[i])})
    return out


class DriftProbe(Probe):
    kind = "drift"
    Config = DriftConfig
    METRICS = {
        "drift_statistic": MetricSpec("Drift statistic of the latest window.", LABELS),
        "drift_p_value": MetricSpec("p-value of the latest window (methods that have one).",
                                    LABELS),
        "drift_window_drifted": MetricSpec(
            "1 when the latest window differs from the reference at the calibrated alpha.",
            LABELS),
        "drift_alarm": MetricSpec(
            "1 while the persistence rule holds the drift alarm (the deciding method only).",
            LABELS),
        "drift_kernel_info": MetricSpec(
            "1 for the kernel that computed the latest statistic: exact, or rff (random "
            "Fourier features, above max_exact pooled rows).", (*LABELS, "kernel")),
        "coverage_gap_ratio": MetricSpec(
            "Share of queries farther from the index than the reference's quantile.",
            ("source",)),
        "drift_window_size": MetricSpec("Rows in the latest current window.", ("source",)),
        "drift_ingest_bad_lines": MetricSpec(
            "Corrupt lines skipped in the query log since the tail started.", ("source",)),
    }

    # --- the run -------------------------------------------------------------------------
    def run(self, deadline: Deadline) -> ProbeResult:
        cfg: DriftConfig = self.config
        now = datetime.now(UTC)
        current = self.current_window(deadline)
        deadline.check("taking the current window")
        result = ProbeResult(embedder_fingerprint=current.fingerprint, target=cfg.target)
        n = current.vectors.shape[0]
        result.add("drift_window_size", n, source=cfg.source)
        if cfg.source == "queries" and cfg.queries.jsonl is not None:
            result.add("drift_ingest_bad_lines", current.bad_lines, source=cfg.source)
        result.details = {"source": cfg.source, "n_current": n, "seen": current.seen}
        if n < cfg.min_samples:
            exc = InsufficientData("current window", n, cfg.min_samples)
            result.details.update(verdict="insufficient data", message=str(exc),
                                  have=n, need=cfg.min_samples)
            return result
        reference = self.reference(now)
        if reference is None:
            ref_id = self.capture(current, pinned=cfg.reference.mode == "pinned")
            self.finish_window(current, now, saved=True)
            result.details.update(verdict="reference captured", reference_id=ref_id)
            return result
        if reference.embedder_fingerprint != current.fingerprint:
            raise FingerprintMismatch(
                f"drift probe {self.name!r}: the reference (id {reference.id}) was embedded "
                f"by pipeline {reference.embedder_fingerprint} but the current window by "
                f"{current.fingerprint}; capture a new reference with `ragmon baseline "
                f"capture {self.name}` after an intended model change"
            )
        self.compare(reference, current, now, deadline, result)
        if reference.instance != self.context.store.instance:  # the fleet's: a new pod's own
            result.details["reference_from_instance"] = reference.instance  # follows
            if cfg.reference.mode == "pinned":
                self.capture(current, pinned=True)
                self.finish_window(current, now, saved=True)
                return result
        if pool.filling(reference, cfg):  # judged against a fresh-reference null, said so
            self.fill(reference, current, result)
        elif pool.calibrates(cfg) and pool.legacy(reference):
            result.details["legacy_reference"] = reference.id
        self.finish_window(current, now, saved=False)
        return result

    def calibration(self) -> alarms.Calibration:
        cfg: DriftConfig = self.config
        return alarms.calibrate(cfg.alarm.false_alarms, cfg.alarm.per, cfg.interval,
                                cfg.alarm.rule, cfg.alarm.k, cfg.alarm.n, cfg.alarm.cusum_drift)

    def fill(self, reference: Reference, current: CurrentWindow, result: ProbeResult) -> None:
        """The reference pool is not yet big enough to calibrate: this window joins it
        (pinned), or the rolling history grows by it (stored after the run)."""
        cfg: DriftConfig = self.config
        status = {"have": reference.pool_rows, "need": pool.pool_need(cfg)}
        if reference.pinned:
            status = pool.fill(self.context.store, reference, current.vectors, current.ids,
                               current.texts, cfg, self.calibration().alpha)
        result.details["pool_filling"] = status

    def compare(self, reference: Reference, current: CurrentWindow, now: datetime,
                deadline: Deadline, result: ProbeResult) -> None:
        """Every method runs; the deciding one, judged against this reference's own null,
        gives the probe's verdict and advances the alarm; the others explain."""
        cfg: DriftConfig = self.config
        cal, decider = self.calibration(), cfg.decider
        null = pool.reference_null(reference, cfg, len(current.vectors), cal.alpha)
        seed = window_seed(cfg.seed, self.name, current.start or current.end)
        rows: list[DriftStatistic] = []
        shifts: dict[int, list[DriftClusterShift]] = {}
        methods: dict[str, Any] = {}
        for name in cfg.methods:
            deadline.check(f"method {name}")
            params = self.method_params(name, cal.alpha, seed, reference, current)
            if name == decider and null is not None:
                params.update(null.params)  # the kernel the null was simulated with
            try:
                res = DRIFT_METHODS.build(name, reference.vectors, current.vectors, **params)
            except InsufficientData as exc:
                methods[name] = {"verdict": "insufficient data", "message": str(exc)}
                continue
            alarm_state = alarms.AlarmState()
            if name == decider:
                res = res if null is None else pool.calibrated(res, null, cal.alpha)
                alarm_state = self.advance_alarm(name, cal, res)
            alarm = alarm_state.alarm if name == decider else None
            methods[name] = {**res.as_dict(), "decides": name == decider, "alarm": alarm}
            self.export(result, name, res, alarm)
            if name == "clusters":
                shifts[len(rows)] = cluster_rows(res)
            rows.append(self.statistic_row(reference, current, res, alarm_state))
        if cfg.source == "queries" and cfg.target is not None:
            deadline.check("coverage")
            res = self.coverage(reference, current)
            methods["coverage"] = res.as_dict()
            result.add("coverage_gap_ratio", res.statistic, source=cfg.source)
            rows.append(self.statistic_row(reference, current, res, alarms.AlarmState()))
        ids = state.save_statistics(self.context.store, rows, shifts)
        conditional = None if null is None else {
            "null_draws": int(null.statistics.size), "holdout_rows": null.holdout_rows,
            "threshold": null.threshold(cal.alpha)}
        result.details.update(
            verdict="compared", reference_id=reference.id, n_reference=len(reference.vectors),
            reference_pinned=reference.pinned, calibration={**cal.as_dict(),
                                                            "conditional": conditional},
            methods=methods, statistic_ids=ids, decided_by=decider,
            drifted=bool(methods.get(decider, {}).get("drifted")),
            alarm=bool(methods.get(decider, {}).get("alarm")),
        )

    def method_params(self, name: str, alpha: float, seed: int, reference: Reference,
                      current: CurrentWindow) -> dict[str, Any]:
        cfg: DriftConfig = self.config
        params: dict[str, Any] = {"alpha": alpha, "min_samples": cfg.min_samples, "seed": seed}
        params.update(cfg.params_of(name))
        # The smallest resampling p-value is 1/(P+1): P must resolve the calibrated alpha.
        floor = math.ceil(10 / alpha)
        if name == "mmd":
            params["permutations"] = max(int(params.get("permutations", 500)), floor)
        elif name == "clusters":
            params["permutations"] = max(int(params.get("permutations", 200)), floor)
        elif name == "centroid":
            params["bootstrap"] = max(int(params.get("bootstrap", 200)), floor)
        if name == "clusters":
            params["texts"] = current.texts if any(current.texts) else None
            params["ids"] = current.ids if any(current.ids) else None
            ref_texts = reference.details.get("texts") or []
            if len(ref_texts) == len(reference.vectors) and any(ref_texts):
                params["reference_texts"] = [t or "" for t in ref_texts]
        return params

    def advance_alarm(self, method: str, cal: alarms.Calibration,
                      res: MethodResult) -> alarms.AlarmState:
        prev = state.previous_alarm_state(self.context.store, self.name, method)
        before = alarms.AlarmState(tuple(prev.get("recent", ())), float(prev.get("cusum", 0.0)),
                                   bool(prev.get("alarm", False)))
        return alarms.update(before, cal, res.drifted, res.p_value)

    def export(self, result: ProbeResult, method: str, res: MethodResult,
               alarm: bool | None) -> None:
        labels = {"source": self.config.source, "method": method}
        result.add("drift_statistic", res.statistic, **labels)
        if res.p_value is not None:
            result.add("drift_p_value", res.p_value, **labels)
        result.add("drift_window_drifted", int(res.drifted), **labels)
        if alarm is not None:  # only the deciding method pages: one budget per probe
            result.add("drift_alarm", int(alarm), **labels)
        if "kernel" in res.details:
            result.add("drift_kernel_info", 1, kernel=res.details["kernel"], **labels)

    def statistic_row(self, reference: Reference, current: CurrentWindow, res: MethodResult,
                      alarm_state: alarms.AlarmState) -> DriftStatistic:
        details = {k: v for k, v in res.details.items() if k not in ("grew", "shrank")}
        details["alarm_state"] = {"recent": list(alarm_state.recent),
                                  "cusum": alarm_state.cusum, "alarm": alarm_state.alarm}
        return DriftStatistic(
            probe=self.name, source=self.config.source, method=res.method,
            window_start=current.start, window_end=current.end, reference_id=reference.id,
            n_reference=len(reference.vectors), n_current=len(current.vectors),
            statistic=float(res.statistic), p_value=as_float(res.p_value),
            threshold=as_float(res.threshold),
            drifted=bool(res.drifted), alarm=alarm_state.alarm, details=jsonable(details),
        )

    # --- windows -------------------------------------------------------------------------
    def fingerprint(self) -> tuple[str, Any]:
        """The embedder's fingerprint id (and the embedder) for this probe's windows."""
        cfg: DriftConfig = self.config
        try:
            _, embedder = self.context.embedder_for(cfg)
        except ValueError:
            if cfg.source != "index":
                raise DriftError(f"drift probe {self.name!r}: name an 'embedder'") from None
            assert cfg.target is not None
            return "index:" + self.context.target(cfg.target).describe().fingerprint(), None
        return embedder.fingerprint_id(), embedder

    def current_window(self, deadline: Deadline) -> CurrentWindow:
        cfg: DriftConfig = self.config
        fingerprint, embedder = self.fingerprint()
        now = datetime.now(UTC)
        if cfg.source == "canary":
            vectors = embedder.encode(list(cfg.texts))
            return CurrentWindow(vectors, fingerprint, None, now, list(cfg.texts),
                                 [str(i) for i in range(len(cfg.texts))])
        if cfg.source == "index":
            assert cfg.target is not None
            # an index window is the sample taken at this time
            sample = self.context.target(cfg.target).sample(
                cfg.window_size, window_seed(cfg.seed, self.name, now))
            return CurrentWindow(sample.vectors, fingerprint, None, now, [None] * len(sample.ids),
                                 list(sample.ids))
        if cfg.queries.jsonl is not None:
            poll_jsonl(self.context.store, self.name, cfg, claims=self.context.claims)
        window = state.peek_window(self.context.store, self.name)
        deadline.check("reading the reservoir")
        return self.embed_window(window, fingerprint, embedder)

    def embed_window(self, window: state.Window, fingerprint: str,
                     embedder: Any) -> CurrentWindow:
        items = window.items
        check_dimensions(items, f"drift probe {self.name!r} reservoir")
        to_embed = [i for i, it in enumerate(items) if it.vector is None]
        encoded: dict[int, np.ndarray] = {}
        if to_embed:
            rows = embedder.encode([items[i].text or "" for i in to_embed])
            encoded = dict(zip(to_embed, rows, strict=True))
        vectors = [it.vector if it.vector is not None else encoded[i]
                   for i, it in enumerate(items)]
        dims = {v.shape[0] for v in vectors}
        if len(dims) > 1:
            raise DriftError(
                f"drift probe {self.name!r}: vectors sent by the app have dimension "
                f"{sorted(dims)} but the embedder gives {embedder.dimension}; the app and "
                "ragmon use different embedding models"
            )
        dim = dims.pop() if dims else 1
        arr = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
        return CurrentWindow(arr.astype(np.float32), fingerprint, window.start, window.end,
                             [it.text for it in items], [it.item_id for it in items],
                             window.seen, int(window.tail.get("bad_lines", 0)))

    def reference(self, now: datetime) -> Reference | None:
        cfg: DriftConfig = self.config
        store = self.context.store
        if cfg.reference.mode == "pinned":
            return state.pinned_reference(store, self.name, cfg.source)
        since = now - timedelta(seconds=cfg.reference.period)
        return state.rolling_reference(store, self.name, cfg.source, since,
                                       cfg.reference.size, cfg.seed)

    def capture(self, current: CurrentWindow, pinned: bool) -> int:
        """Store ``current`` as a reference window (pinned: used until the next capture)."""
        window = (current.start, current.end) if current.start is not None else None
        ref_id = save_reference(self.context.store,
            self.name, self.config.source, current.fingerprint, current.vectors,
            [i for i in current.ids], pinned=pinned, window=window,
            details={"texts": [None if t is None else t[:300] for t in current.texts],
                     "pool": True},
        )
        cfg: DriftConfig = self.config
        if pinned and pool.calibrates(cfg) and len(current.vectors) >= pool.pool_need(cfg):
            pool.finish(self.context.store, ref_id, cfg, self.calibration().alpha)
        return ref_id

    def finish_window(self, current: CurrentWindow, now: datetime, saved: bool) -> None:
        cfg: DriftConfig = self.config
        if cfg.reference.mode == "rolling" and not saved:
            self.capture(current, pinned=False)
        if cfg.source == "queries":  # closed once, by the run (the replica) that took it
            state.reset_window(self.context.store, self.name, now, started=current.start)

    def coverage(self, reference: Reference, current: CurrentWindow) -> MethodResult:
        cfg: DriftConfig = self.config
        assert cfg.target is not None
        target = self.context.target(cfg.target)
        distances = nearest_distances(target, current.vectors)
        res = coverage(nearest_distances(target, reference.vectors), distances,
                       quantile=cfg.coverage_quantile, min_samples=min(cfg.min_samples, 20))
        res.details["examples"] = gap_examples(distances, res.details["bar"], current)
        return res

    def render(self, result: ProbeResult) -> str:
        return render_result(self.name, result)
