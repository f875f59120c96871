"""The shared schedule: replicas on one store run each probe's slots once between them.

A slot is one fire time of a probe's schedule, computed the same way on every replica:
interval schedules count from one fixed anchor (2000-01-01 UTC) shifted by a phase that
depends only on the probe's name (a hash, less than one interval), so every replica's
``every: 30s`` of a probe fires at the same instants while 200 probes of one interval do
not all fire at the same second; cron schedules are the same everywhere already.
At each fire, every replica waits a moment and tries to claim the slot
(``ragmon.monitor.store.claims``): the first INSERT wins and runs it after the probe's own
``jitter``; the others count a skip
(``ragmon_probe_slots_skipped_total{reason="claimed_elsewhere"}``). The wait is what spreads
slots across replicas without a leader: a random part (up to half of ``CLAIM_SPREAD``
seconds, at most a twentieth of the interval), plus a part that grows with the share of
recent claims this replica won. A replica that wakes a few milliseconds sooner than the
others (a less loaded machine) would otherwise win nearly every slot; with it, a replica
winning more than its share waits longer and the shares even out.

After its own slot, a replica looks for a slot of the same probe whose claimer let the lease
run out unfinished (it died) within the probe's ``misfire_grace`` and takes it over, so a
dead replica's slot runs at most about one interval after its lease ended.

Jobs that must run once across replicas on a timer (retention) claim their slots the same
way, under a name no probe can have (``@retention``).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, Counter, Histogram

from ragmon.monitor.config import ProbeConfig, RootConfig
from ragmon.monitor.errors import StoreError
from ragmon.monitor.runner import Runner
from ragmon.monitor.store.claims import Claims, SlotClaim

log = logging.getLogger("ragmon.schedule")

#: Every replica counts interval slots from here, so their slots coincide.
ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
#: The longest wait before a claim (seconds; at most a tenth of the interval). The wait
#: holds a scheduler thread, and every replica waits at every fire of every probe.
CLAIM_SPREAD = 0.1
SKIP_REASONS = ("claimed_elsewhere", "store_unavailable", "stopping")


def phase(name: str, interval: float) -> timedelta:
    """Where in each interval probe ``name``'s slots fall: the same on every replica."""
    millis = max(1, int(interval * 1000))
    return timedelta(milliseconds=zlib.crc32(name.encode()) % millis)


def probe_trigger(cfg: ProbeConfig, name: str = "") -> IntervalTrigger | CronTrigger:
    """Probe ``name``'s schedule in UTC, the same instants on every replica. Its ``jitter``
    is not in the trigger: the replica that claims a slot waits it before running."""
    if cfg.cron is not None:
        return CronTrigger.from_crontab(cfg.cron, timezone="UTC")
    return IntervalTrigger(seconds=cfg.interval, start_date=ANCHOR + phase(name, cfg.interval),
                           timezone="UTC")


def slot_at(trigger: IntervalTrigger | CronTrigger, now: datetime) -> datetime:
    """The trigger's latest fire time at or before ``now``: the slot a fire at ``now``
    (or a little after it) belongs to."""
    if isinstance(trigger, IntervalTrigger):
        step, start = trigger.interval_length, trigger.start_date
        count = math.floor(round((now - start).total_seconds() / step, 6))
        anchored: datetime = start + timedelta(seconds=count * step)
        return anchored.astimezone(UTC)
    lookback = 60.0
    while True:
        fire = trigger.get_next_fire_time(None, now - timedelta(seconds=lookback))
        if fire is not None and fire <= now:
            break
        lookback *= 4  # a sparse cron (weekdays at 9): look further back
    while True:
        after = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if after is None or after > now:
            found: datetime = fire.astimezone(UTC)
            return found
        fire = after


class SharedSchedule:
    """Each scheduler job of a probe calls :meth:`fire`; it claims, waits the jitter, runs."""

    def __init__(self, config: Callable[[], RootConfig], runner: Runner, claims: Claims,
                 registry: CollectorRegistry, stop: threading.Event):
        """``config`` gives the daemon's current config (it may be reloaded)."""
        self._config = config
        self.runner = runner
        self.claims = claims
        self.stop = stop
        self.win_rate = 0.5
        self._lock = threading.Lock()
        self._busy: dict[str, threading.Lock] = {}
        self.skipped = Counter(
            "ragmon_probe_slots_skipped",
            "Schedule slots this replica did not run, by reason: claimed_elsewhere (another "
            "replica runs it), store_unavailable (the claim could not be made), stopping.",
            ["probe", "reason"], registry=registry)
        self.taken_over = Counter(
            "ragmon_probe_slots_taken_over",
            "Slots this replica ran after their first claimer let the lease run out.",
            ["probe"], registry=registry)
        self.claim_seconds = Histogram(
            "ragmon_slot_claim_duration_seconds", "Time to claim one slot in the store.",
            buckets=(.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5),
            registry=registry)
        for name in config().probes:
            self.taken_over.labels(name)
            for reason in SKIP_REASONS:
                self.skipped.labels(name, reason)

    @property
    def config(self) -> RootConfig:
        return self._config()

    def lease(self, cfg: ProbeConfig) -> float:
        """How long a claim holds: the probe's jitter, its timeout and the grace."""
        return float(cfg.jitter) + float(cfg.timeout) + float(self.config.scheduler.claim_grace)

    def fire(self, name: str) -> None:
        """The scheduler job of probe ``name``: run this slot if this replica claims it,
        then a slot a dead replica left, if any. A probe still running here (its first run
        after start is a job of its own) is not fired again: another replica may claim."""
        with self._lock:
            busy = self._busy.setdefault(name, threading.Lock())
        if not busy.acquire(blocking=False):
            log.debug("probe %s is still running here; its slot is left to the others", name)
            return
        try:
            self._fire(name)
        finally:
            busy.release()

    def _fire(self, name: str) -> None:
        cfg = self.config.probes[name]
        now = datetime.now(UTC)
        slot = slot_at(probe_trigger(cfg, name), now)
        spread = min(CLAIM_SPREAD, cfg.interval / 10)
        if self.stop.wait(spread * (random.uniform(0, 0.5) + 0.5 * self.win_rate)):
            self.skipped.labels(name, "stopping").inc()
            return
        asked, claim = self._claim(name, lambda: self.claims.claim(name, slot,
                                                                    self.lease(cfg)))
        if asked:
            with self._lock:  # recent share of claims won: an average over ~20 claims
                self.win_rate += (float(claim is not None) - self.win_rate) / 20
        if claim is not None:
            self._run(name, claim, float(cfg.jitter))
        elif asked:
            self.skipped.labels(name, "claimed_elsewhere").inc()
        grace = float(cfg.misfire_grace or self.config.scheduler.misfire_grace)
        since = slot - timedelta(seconds=max(grace, cfg.interval))
        _, taken = self._claim(name, lambda: self.claims.take_over(
            name, since, float(cfg.timeout) + float(self.config.scheduler.claim_grace)))
        if taken is not None:
            log.warning("probe %s: running slot %s, whose claim by another replica ran out",
                        name, taken.slot.isoformat(), extra={"probe": name})
            self.taken_over.labels(name).inc()
            self._run(name, taken, 0.0)

    def _claim(self, name: str, make: Callable[[], SlotClaim | None]
               ) -> tuple[bool, SlotClaim | None]:
        """(whether the store answered, the claim if this replica won it)."""
        if self.stop.is_set():
            return False, None
        started = time.perf_counter()
        try:
            claim = make()
        except StoreError as exc:
            self.skipped.labels(name, "store_unavailable").inc()
            log.warning("probe %s: cannot claim its slot, skipped: %s", name, exc,
                        extra={"probe": name})
            return False, None
        self.claim_seconds.observe(time.perf_counter() - started)
        return True, claim

    def _run(self, name: str, claim: SlotClaim, jitter: float) -> None:
        if jitter > 0 and self.stop.wait(random.uniform(0, jitter)):
            self._release(claim)
            return
        _, run_id = self.runner.run(name, claim)
        if run_id is None:  # not stored (stopping, store down): another replica may retry it
            self._release(claim)

    def _release(self, claim: SlotClaim) -> None:
        try:
            self.claims.release(claim)
        except StoreError:
            pass  # the lease runs out by itself

    def run_job(self, job: str, interval: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` if this replica claims the current slot of the timer job ``job``."""
        slot = slot_at(IntervalTrigger(seconds=interval, start_date=ANCHOR, timezone="UTC"),
                       datetime.now(UTC))
        try:
            claim = self.claims.claim(f"@{job}", slot, interval)
        except StoreError as exc:
            log.warning("%s: cannot claim this period's run, skipped: %s", job, exc)
            return
        if claim is None:
            log.debug("%s: another replica runs this period's", job)
            return
        fn()
        try:
            with self.claims.store.session() as s:
                self.claims.finish(s, claim, None)
        except StoreError:
            pass  # claimed is what matters: the period is not run again


__all__ = ["ANCHOR", "SharedSchedule", "phase", "probe_trigger", "slot_at"]
