"""The delivery worker: sends queued notifications, retries with backoff, records failures.

Every replica runs one (a scheduler job every ``alerts.delivery.poll``, and right after
the engine queues something). A worker claims a due outbox row with one conditional UPDATE
(pending -> sending, with a lease) and only then sends, so a notification is sent by
exactly one replica; a replica that dies mid-send leaves a lease that expires, and another
replica retries.

Exactly once also needs the lease to outlive every send, and the result to be recorded only
by the claim that made it:

- a send ends by half the lease after its claim (its sink's timeout, capped; config
  validation keeps ``delivery.timeout`` at most half the lease), so a row is never claimed
  again while a send of it still runs; the other half is margin for clock skew between
  replicas and for recording the result;
- a claim is identified by the replica and the ``claimed_until`` it wrote; the send checks
  it before sending, and the completion is an UPDATE conditional on it. A completion that
  lost its claim (a stall longer than the lease) changes nothing and is counted
  (``ragmon_notification_lost_claims_total``).

Each sink sends on its own few threads, and a row is claimed only when its sink has a free
one (so no lease runs out in a queue): a receiver that hangs holds up only its own sink.
Sending never happens on a probe's thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, delete, or_, select, update

from ragmon.alerts.after_send import record_after_send
from ragmon.alerts.config import AlertsConfig
from ragmon.alerts.metrics import AlertStats
from ragmon.alerts.sinks import Notification, Sink, build_sink
from ragmon.alerts.tables import AlertNotification as Row
from ragmon.monitor.common import Redactor
from ragmon.monitor.errors import StoreError
from ragmon.monitor.store import Store

log = logging.getLogger("ragmon.alerts")

BATCH = 50
SENDS_PER_SINK = 4  # sends in flight at once to one sink, on that sink's own threads


@dataclass(frozen=True)
class Claim:
    """One claim on one outbox row, as this worker made it."""

    row_id: int
    sink: str
    until: datetime  # the claimed_until written: with the replica, it identifies the claim
    deadline: float  # time.monotonic() by which the send must have ended


class _Lane:
    """One sink's own send threads. A slot is reserved before a row is claimed and freed when
    its send is done, so rows are claimed only as fast as the sink takes them."""

    def __init__(self, sink: str, size: int):
        self.size = size
        self.busy = 0
        self.closed = False  # the daemon is stopping: nothing more is claimed for this sink
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=size,
                                       thread_name_prefix=f"ragmon-alert-send-{sink}")

    def free(self) -> int:
        with self.lock:
            return self.size - self.busy

    def reserve(self) -> bool:
        with self.lock:
            if self.closed or self.busy >= self.size:
                return False
            self.busy += 1
            return True

    def release(self, *_: Any) -> None:
        with self.lock:
            self.busy -= 1

    def run(self, fn: Callable[..., None], *args: Any) -> Future[None]:
        """Run ``fn`` on a reserved slot; the slot is freed when it returns."""
        try:
            future = self.pool.submit(fn, *args)
        except RuntimeError:  # closed after the slot was reserved: the lease retries the row
            self.release()
            done: Future[None] = Future()
            done.set_result(None)
            return done
        except BaseException:
            self.release()
            raise
        future.add_done_callback(self.release)
        return future


class DeliveryWorker:
    """Claims due notifications from the outbox and delivers them on its send threads."""

    def __init__(
        self,
        store: Store,
        config: AlertsConfig,
        stats: AlertStats | None = None,
        *,
        replica: str | None = None,
        sinks: dict[str, Sink] | None = None,
    ):
        self.store = store
        self.config = config
        self.delivery = config.delivery
        self.stats = stats or AlertStats()
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.sinks = sinks if sinks is not None else {
            name: build_sink(name, cfg, self.delivery.timeout) for name, cfg in config.sinks.items()
        }
        self.redact = Redactor(config.secrets())
        # A send must end by half the lease after its claim, whatever its sink's own timeout.
        self.send_limit = self.delivery.lease / 2
        for name, sink in self.sinks.items():
            if sink.timeout > self.send_limit:
                log.warning("sink %r: timeout %gs is more than half the delivery lease (%gs); "
                            "its sends are cut at %gs", name, sink.timeout,
                            self.delivery.lease, self.send_limit)
        self._lanes = {name: _Lane(name, SENDS_PER_SINK) for name in self.sinks}

    # --- lifecycle -----------------------------------------------------------------------
    def deliver_due(self) -> None:
        """One pass for the scheduler: never raises, so the job outlives any fault."""
        try:
            self.run_once(wait_for_sends=False)
        except StoreError as exc:
            log.warning("alert delivery: store unavailable, will retry: %s", exc)
        except Exception:  # noqa: BLE001 - delivery must outlive any one bug
            log.exception("alert delivery: unexpected error")

    def prune(self, retention_seconds: float) -> int:
        """Delete finished notifications (sent, failed, superseded) older than the retention."""
        cutoff = datetime.now(UTC) - timedelta(seconds=retention_seconds)
        try:
            with self.store.session() as s:
                result = s.execute(delete(Row).where(
                    Row.created_at < cutoff, Row.status.not_in(("pending", "sending"))))
                assert isinstance(result, CursorResult)  # a DELETE has a rowcount
                return int(result.rowcount or 0)
        except StoreError as exc:
            log.warning("alert outbox retention: %s", exc)
            return 0

    def close(self, wait: bool = True) -> None:
        """Stop the send threads (a claimed but unsent row is retried when its lease ends)."""
        for lane in self._lanes.values():
            with lane.lock:
                lane.closed = True
            lane.pool.shutdown(wait=wait, cancel_futures=True)

    # --- one pass ------------------------------------------------------------------------
    def run_once(self, wait_for_sends: bool = True) -> int:
        """Claim the due notifications that their sinks have a free thread for, and send
        them; returns how many were claimed."""
        now = datetime.now(UTC)
        dropped = self._drop_unconfigured(now)
        claims: list[tuple[_Lane, Claim]] = []
        for name, lane in self._lanes.items():
            free = lane.free()
            if not free:
                continue  # this sink is busy: its rows wait, unclaimed, for a free thread
            with self.store.session() as s:
                ids = list(s.scalars(select(Row.id).where(Row.sink == name, _due(now))
                                     .order_by(Row.id).limit(free)).all())
            for row_id in ids:
                if not lane.reserve():
                    break
                claim = self._claim(row_id, name)
                if claim is None:
                    lane.release()
                    continue
                claims.append((lane, claim))
        futures = [lane.run(self._deliver, claim) for lane, claim in claims]
        if wait_for_sends:
            wait(futures)
        return dropped + len(futures)

    def _drop_unconfigured(self, now: datetime) -> int:
        """Notifications to a sink that is no longer configured fail at once."""
        with self.store.session() as s:
            rows = s.execute(select(Row.id, Row.sink, Row.attempts).where(
                Row.sink.not_in(list(self.sinks)), _due(now)).order_by(Row.id).limit(BATCH)).all()
        claimed = 0
        for row_id, sink, attempts in rows:
            claim = self._claim(row_id, sink)
            if claim is not None:
                claimed += 1
                self._finish(claim, attempts, f"sink {sink!r} is not configured", give_up=True)
        return claimed

    def _claim(self, row_id: int, sink: str) -> Claim | None:
        now, started = datetime.now(UTC), time.monotonic()
        until = now + timedelta(seconds=self.delivery.lease)
        with self.store.session() as s:
            result = s.execute(
                update(Row).where(Row.id == row_id, _due(now)).values(
                    status="sending", claimed_by=self.replica, claimed_until=until,
                )
            )
            assert isinstance(result, CursorResult)  # an UPDATE has a rowcount
            if result.rowcount != 1:
                return None
        return Claim(row_id, sink, until, started + self.send_limit)

    def _held(self, claim: Claim) -> Any:
        """The row is still under ``claim``: the condition of every write a send makes."""
        return and_(Row.id == claim.row_id, Row.status == "sending",
                    Row.claimed_by == self.replica, Row.claimed_until == claim.until)

    def _deliver(self, claim: Claim) -> None:
        try:
            with self.store.session() as s:
                row = s.scalars(select(Row).where(self._held(claim))).one_or_none()
                if row is None:
                    self._lost(claim, "before sending")
                    return
                payload, attempts = dict(row.payload), row.attempts
                superseded = row.event == "firing" and _resolved_later(s, row)
            if superseded:
                self._record(claim, {"status": "superseded", "claimed_until": None})
                return
            sink = self.sinks[claim.sink]
            try:
                if time.monotonic() >= claim.deadline:
                    raise TimeoutError("no time left to send before the lease ends")
                sink.send(Notification.from_payload(payload), deadline=claim.deadline)
            except Exception as exc:  # noqa: BLE001 - recorded and retried, never raised
                error = self.redact(str(exc)) or type(exc).__name__
                self._finish(claim, attempts, error)
            else:
                self._finish(claim, attempts, None)
        except Exception as exc:  # noqa: BLE001 - the lease expires and a worker retries
            log.warning("alert delivery of notification %s: %s", claim.row_id,
                        self.redact(str(exc)))

    def _finish(self, claim: Claim, attempts: int, error: str | None,
                give_up: bool = False) -> None:
        now = datetime.now(UTC)
        attempts += 1
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
        delay = 0.0
        if error is None:
            values.update(status="sent", sent_at=now)
            outcome = "sent"
        elif give_up or attempts >= self.delivery.max_attempts:
            values.update(status="failed", last_error=error[:2000])
            outcome = "dropped"
        else:
            delay = min(self.delivery.max_backoff, self.delivery.backoff * 2 ** (attempts - 1))
            values.update(status="pending", last_error=error[:2000],
                          next_attempt_at=now + timedelta(seconds=delay))
            outcome = "failed"
        what = f"{outcome}: {error}" if error else outcome
        if outcome == "sent":  # the receiver has it: recorded before the lease ends, or resent
            recorded = record_after_send(
                f"alert notification {claim.row_id} to sink {claim.sink!r}",
                lambda: self._record(claim, values, what), send_deadline=claim.deadline,
                lease=self.delivery.lease, log=log, redact=self.redact)
        else:
            recorded = self._record(claim, values, what)
        if not recorded:
            return
        self.stats.delivered(claim.sink, outcome)
        if outcome == "dropped":
            log.error("alert notification %s to sink %r failed %d times, giving up: %s",
                      claim.row_id, claim.sink, attempts, error)
        elif outcome == "failed":
            log.warning("alert notification %s to sink %r failed (attempt %d), retrying in "
                        "%.3gs: %s", claim.row_id, claim.sink, attempts, delay, error)

    def _record(self, claim: Claim, values: dict[str, Any], what: str = "") -> bool:
        """Write ``values`` if the row is still under ``claim``; else change nothing."""
        with self.store.session() as s:
            result = s.execute(update(Row).where(self._held(claim)).values(**values))
            assert isinstance(result, CursorResult)  # an UPDATE has a rowcount
            if result.rowcount == 1:
                return True
        self._lost(claim, f"before its result ({what or values.get('status')}) was recorded")
        return False

    def _lost(self, claim: Claim, when: str) -> None:
        self.stats.lost_claim(claim.sink)
        log.warning("alert notification %s to sink %r: the claim ended %s; whoever holds the "
                    "row now decides", claim.row_id, claim.sink, when)


def _resolved_later(s: Any, row: Row) -> bool:
    """A firing notice retried after its alert resolved would contradict the resolve."""
    return s.scalar(select(Row.id).where(
        Row.rule == row.rule, Row.fingerprint == row.fingerprint, Row.sink == row.sink,
        Row.event == "resolved", Row.id > row.id,
    ).limit(1)) is not None


def _due(now: datetime) -> Any:
    return or_(
        and_(Row.status == "pending", Row.next_attempt_at <= now),
        and_(Row.status == "sending", Row.claimed_until < now),
    )
