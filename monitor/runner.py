"""Run one probe: its own time limit, a typed result whatever happens, one transaction to store it.

A probe body runs in its own daemon thread. Past the probe's timeout the runner records a
``timeout`` result and returns, so later runs still happen; the abandoned thread is counted
(``ragmon_probe_abandoned_runs``) and its eventual result is discarded. Probes also check
their ``Deadline`` between phases, so most stop on their own soon after.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge

from ragmon.monitor.common import Redactor
from ragmon.monitor.config import secret_values
from ragmon.monitor.context import ProbeContext
from ragmon.monitor.errors import ProbeInterrupted, ProbeTimeout, RagmonError, StoreError
from ragmon.monitor.kinds import Registry
from ragmon.monitor.probe import Deadline, Probe, ProbeResult
from ragmon.monitor.store import FinishClaim, RunRecord
from ragmon.monitor.store.claims import Claims, SlotClaim

log = logging.getLogger("ragmon.runner")
STATUSES = ("ok", "failed", "timeout")


class _Interrupted(ProbeResult):
    """What a run that stopped for shutdown leaves: never stored."""


class Runner:
    def __init__(self, context: ProbeContext, registry: CollectorRegistry,
                 probe_kinds: Registry[Probe], claims: Claims | None = None, *,
                 settle: bool = False):
        """With ``settle`` (a long-running daemon), the heap is settled after each probe's
        first run (:func:`settle_heap`)."""
        self.context = context
        #: The shared schedule's claims; a run given a slot claim is stored only while the
        #: claim holds, and every run names this replica.
        self.claims = claims
        self.probes: dict[str, Probe] = {
            name: probe_kinds.build(cfg.kind, name, cfg, context)
            for name, cfg in context.config.probes.items()
        }
        self._redact = Redactor(secret_values(context.config))
        self._stopping = threading.Event()
        self._stop_deadline = float("inf")
        self._abandoned: dict[str, threading.Thread] = {}
        self._threads: set[threading.Thread] = set()  # every probe thread ever started
        self._inflight = 0
        self._idle = threading.Condition()
        self._settle = settle
        self._settled: set[str] = set()  # probes whose first run has been stored
        self.runs_total = Counter(
            "ragmon_probe_runs", "Probe runs by outcome.", ["probe", "status"], registry=registry
        )
        self.store_errors = Counter(
            "ragmon_store_errors", "Failed writes to the store.", registry=registry
        )
        self.hook_failures = Counter(
            "ragmon_after_run_hook_failures", "After-run hooks that raised.", registry=registry
        )
        abandoned = Gauge(
            "ragmon_probe_abandoned_runs",
            "Probe threads still running after their timeout.",
            registry=registry,
        )
        abandoned.set_function(lambda: sum(t.is_alive() for t in self._abandoned.values()))
        for name in self.probes:
            for status in STATUSES:
                self.runs_total.labels(name, status)

    def replace(self, context: ProbeContext, probes: dict[str, Probe]) -> None:
        """Runs started from now on use ``probes`` and ``context`` (a config reload); runs in
        flight finish with the probe they started with."""
        self.context = context
        self.probes = probes
        self._redact = Redactor(secret_values(context.config))
        for name in probes:
            for status in STATUSES:
                self.runs_total.labels(name, status)

    def live_threads(self) -> set[threading.Thread]:
        """The probe threads running now."""
        return {t for t in list(self._threads) if t.is_alive()}

    def stop(self, grace: float) -> None:
        """Refuse new runs; runs still going after ``grace`` seconds are not stored."""
        self._stop_deadline = time.monotonic() + grace
        self._stopping.set()

    def threads_alive(self) -> int:
        """Probe threads still running, abandoned ones included (they may be in native code:
        a FAISS search, a torch forward pass)."""
        return sum(t.is_alive() for t in list(self._threads))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is in flight; False if some still are after ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def run(self, name: str, claim: SlotClaim | None = None) -> tuple[ProbeResult, int | None]:
        """Run probe ``name`` now (for the schedule slot ``claim``, if given), store the
        result, call the after-run hooks."""
        with self._idle:
            self._inflight += 1
        try:
            return self._run(name, claim)
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def _run(self, name: str, claim: SlotClaim | None) -> tuple[ProbeResult, int | None]:
        probe = self.probes.get(name)
        if probe is None:  # removed by a config reload after this run was queued
            return ProbeResult.failed(f"probe {name!r} is no longer configured"), None
        started = datetime.now(UTC)
        result = self._execute(probe)
        if result is None:  # shutting down and the run did not finish within the grace time
            return ProbeResult.failed("interrupted by shutdown"), None
        if result.error:  # stored, logged and notified: never with a configured secret in it
            result.error = self._redact(result.error)
        finished = datetime.now(UTC)
        record = RunRecord(
            probe=name, kind=probe.kind, target=result.target or probe.target_name,
            started_at=started, finished_at=finished, status=result.status, error=result.error,
            details=result.details, values=result.values, queries=result.queries,
            golden_version=result.golden_version,
            embedder_fingerprint=result.embedder_fingerprint,
            target_fingerprint=result.target_fingerprint,
            replica=self.claims.replica if self.claims is not None else None,
            slot=claim.slot if claim is not None else None,
        )
        finish: FinishClaim | None = None
        if claim is not None and self.claims is not None:
            claims, held = self.claims, claim
            finish = lambda s, run_id: claims.finish(s, held, run_id)  # noqa: E731
        self.runs_total.labels(name, result.status).inc()
        extra = {"probe": name, "kind": probe.kind, "target": record.target or "",
                 "status": result.status,
                 "duration_seconds": round((finished - started).total_seconds(), 3)}
        if result.status == "ok":
            log.info("probe run finished", extra=extra)
        else:
            log.warning("probe run %s: %s", result.status, result.error, extra=extra)
        try:
            run_id: int | None = self.context.store.record_run(record, finish)
        except StoreError as exc:
            self.store_errors.inc()
            log.error("could not store the run: %s", exc, extra=extra)
            return result, None
        for hook in list(self.context.after_run):
            try:
                hook(name, record, run_id)
            except Exception:
                self.hook_failures.inc()
                log.exception("after-run hook %r failed", getattr(hook, "__name__", hook),
                              extra=extra)
        if self._settle and name not in self._settled:
            self._settled.add(name)
            settle_heap()
        return result, run_id

    def _execute(self, probe: Probe) -> ProbeResult | None:
        if self._stopping.is_set():
            return None
        timeout = float(probe.config.timeout)
        outcome: list[ProbeResult] = []
        thread = threading.Thread(
            target=self._body, args=(probe, Deadline(timeout, self._stopping), outcome),
            name=f"probe:{probe.name}", daemon=True,
        )
        limit = time.monotonic() + timeout
        self._threads = {t for t in self._threads if t.is_alive()}
        self._threads.add(thread)
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
            now = time.monotonic()
            if self._stopping.is_set() and now > self._stop_deadline:
                return None
            if now > limit and thread.is_alive():
                self._abandoned[probe.name] = thread
                return ProbeResult(status="timeout", error=f"timed out after {timeout:g}s")
        result = outcome[0] if outcome else None
        return None if result is None or isinstance(result, _Interrupted) else result

    @staticmethod
    def _body(probe: Probe, deadline: Deadline, outcome: list[ProbeResult]) -> None:
        try:
            result = probe.run(deadline)
        except ProbeInterrupted:
            result = _Interrupted()  # the daemon is stopping: nothing to store
        except ProbeTimeout as exc:
            result = ProbeResult(status="timeout", error=str(exc))
        except RagmonError as exc:
            result = ProbeResult.failed(str(exc))
        except Exception as exc:  # a bug or an unexpected library error: still a result
            log.debug("probe %s raised", probe.name, exc_info=True)
            result = ProbeResult.failed(f"{type(exc).__name__}: {exc}")
        outcome.append(result)


#: The collector's youngest-generation threshold in a settled daemon (Python's default: 700).
GC_YOUNG = 10_000


def settle_heap() -> None:
    """Take what is alive after a probe's first run (the libraries it imported, its index,
    golden set and caches) out of the cyclic garbage collector's full passes. Without it, a
    full pass walked those objects once per 1,000-query recall run: 80 to 90 ms of a run
    whose own work outside the searches is about 300 ms. Garbage is collected first, so only
    live objects are frozen; they are still freed when their last reference goes, but a
    cycle among them is never collected: once per probe in a daemon's life, not per run,
    and never in a short-lived process that builds many runners (the CLI, tests).

    The youngest generation is also collected every ``GC_YOUNG`` container allocations
    instead of 700: a run builds its rows (about 100,000 dicts and lists for 1,000 queries,
    freed by reference counting, not by the collector), and 70 young collections with 7
    middle ones cost 6 to 10 ms of it; at 10,000 it is 3 passes, about 3 ms."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG, young), middle, old)
