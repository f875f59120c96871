"""The delivery worker: sends queued notifications, retries with backoff, records failures.

Every replica runs one (a scheduler job every ``alerts.delivery.poll``, and right after
the engine queues something). A worker claims a due outbox row with one conditional UPDATE
(pending -> sending, with a lease) and only then sends, so a notification is sent by
exactly one replica; a replica that dies mid-send leaves a lease that expires, and another
replica retries. Sending happens on a small thread pool, never on a probe's thread.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, delete, or_, select, update

from ragmon.alerts.config import AlertsConfig
from ragmon.alerts.metrics import AlertStats
from ragmon.alerts.sinks import Notification, Sink, build_sink
from ragmon.alerts.tables import AlertNotification as Row
from ragmon.monitor.common import Redactor
from ragmon.monitor.errors import StoreError
from ragmon.monitor.store import Store

log = logging.getLogger("ragmon.alerts")

BATCH = 50


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
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ragmon-alert-send")

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
        self._pool.shutdown(wait=wait, cancel_futures=True)

    # --- one pass ------------------------------------------------------------------------
    def run_once(self, wait_for_sends: bool = True) -> int:
        """Claim every due notification and send it; returns how many were claimed."""
        now = datetime.now(UTC)
        with self.store.session() as s:
            ids = list(s.scalars(
                select(Row.id).where(_due(now)).order_by(Row.id).limit(BATCH)
            ).all())
        claimed = [i for i in ids if self._claim(i, now)]
        futures = [self._pool.submit(self._deliver, i) for i in claimed]
        if wait_for_sends:
            wait(futures)
        return len(claimed)

    def _claim(self, row_id: int, now: datetime) -> bool:
        with self.store.session() as s:
            result = s.execute(
                update(Row).where(Row.id == row_id, _due(now)).values(
                    status="sending", claimed_by=self.replica,
                    claimed_until=now + timedelta(seconds=self.delivery.lease),
                )
            )
            assert isinstance(result, CursorResult)  # an UPDATE has a rowcount
            return bool(result.rowcount == 1)

    def _deliver(self, row_id: int) -> None:
        try:
            with self.store.session() as s:
                row = s.get(Row, row_id)
                assert row is not None
                sink_name, payload, attempts = row.sink, dict(row.payload), row.attempts
                if row.event == "firing" and _resolved_later(s, row):
                    row.status, row.claimed_until = "superseded", None
                    return
            sink = self.sinks.get(sink_name)
            if sink is None:
                self._finish(row_id, sink_name, attempts, f"sink {sink_name!r} is not configured",
                             give_up=True)
                return
            try:
                sink.send(Notification.from_payload(payload))
            except Exception as exc:  # noqa: BLE001 - recorded and retried, never raised
                error = self.redact(str(exc)) or type(exc).__name__
                self._finish(row_id, sink_name, attempts, error)
            else:
                self._finish(row_id, sink_name, attempts, None)
        except Exception as exc:  # noqa: BLE001 - the lease expires and a worker retries
            log.warning("alert delivery of notification %s: %s", row_id, self.redact(str(exc)))

    def _finish(self, row_id: int, sink: str, attempts: int, error: str | None,
                give_up: bool = False) -> None:
        now = datetime.now(UTC)
        attempts += 1
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
        if error is None:
            values.update(status="sent", sent_at=now)
            outcome = "sent"
        elif give_up or attempts >= self.delivery.max_attempts:
            values.update(status="failed", last_error=error[:2000])
            outcome = "dropped"
            log.error("alert notification %s to sink %r failed %d times, giving up: %s",
                      row_id, sink, attempts, error)
        else:
            delay = min(self.delivery.max_backoff, self.delivery.backoff * 2 ** (attempts - 1))
            values.update(status="pending", last_error=error[:2000],
                          next_attempt_at=now + timedelta(seconds=delay))
            outcome = "failed"
            log.warning("alert notification %s to sink %r failed (attempt %d), retrying in "
                        "%.3gs: %s", row_id, sink, attempts, delay, error)
        self.stats.delivered(sink, outcome)
        with self.store.session() as s:
            s.execute(update(Row).where(Row.id == row_id, Row.claimed_by == self.replica)
                      .values(**values))


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
