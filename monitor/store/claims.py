"""Claims: what replicas sharing one store do exactly once, decided in the store.

A **slot** is one scheduled fire time of one probe (of one instance). A replica runs a slot
only after :meth:`Claims.claim` inserted its row: one ``INSERT ... ON CONFLICT DO NOTHING``
on the unique (probe, instance, slot), which exactly one replica wins; the others skip the
slot. The claim carries a lease (the probe's jitter, timeout and a grace). The run is stored
in the same transaction that marks its claim finished, and only while the claim still holds
(:meth:`Claims.finish`): a run whose claim was lost is not stored, so no slot is stored
twice. A claimer that dies leaves an unfinished claim whose lease runs out; at its next
fire of that probe, another replica takes the slot over (:meth:`Claims.take_over`, one
conditional UPDATE that only one replica wins) and the run row names who ran it.

A **lease** (:meth:`Claims.acquire`) is a named job that one replica at a time runs, such
as tailing one JSONL file: the holder renews it while it works; when it stops renewing, the
next replica to ask gets it once it has expired.

Both use the replicas' clocks: keep them within a small part of ``scheduler.claim_grace``
(NTP does). On SQLite (one daemon) every claim succeeds: the same code path, no effect.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session

from ragmon.monitor.store.models import Lease, ProbeSlot
from ragmon.monitor.store.retention import RetentionJob, RetentionPart

if TYPE_CHECKING:
    from ragmon.monitor.store import Store


def default_replica() -> str:
    """``HOST:PID:xxxxxx``: unique per process life (a restarted pod keeps its host name
    and, in a container, PID 1)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class SlotClaim:
    """One claim on one slot, as this replica made it."""

    probe: str
    instance: str
    slot: datetime
    replica: str
    #: The lease written: with the replica, it identifies this claim.
    lease_until: datetime
    #: 1 for the first claim; more when the slot was taken over after a lease ran out.
    attempt: int = 1


class Claims:
    """Slot claims and leases of one replica (``replica``) and one ``instance``."""

    def __init__(self, store: Store, replica: str | None = None, instance: str = ""):
        self.store = store
        self.replica = replica or default_replica()
        self.instance = instance

    # --- slots ---------------------------------------------------------------------------
    def claim(self, probe: str, slot: datetime, lease: float) -> SlotClaim | None:
        """Claim ``slot`` of ``probe`` for ``lease`` seconds; None when another replica has
        (or had) it."""
        from ragmon.monitor.store import insert_ignore

        now = datetime.now(UTC)
        until = now + timedelta(seconds=lease)
        with self.store.session() as s:
            won = insert_ignore(s, ProbeSlot, {
                "probe": probe, "instance": self.instance, "slot": slot,
                "claimed_by": self.replica, "claimed_at": now, "lease_until": until,
                "attempts": 1}, ["probe", "instance", "slot"])
        return SlotClaim(probe, self.instance, slot, self.replica, until) if won else None

    def take_over(self, probe: str, since: datetime, lease: float) -> SlotClaim | None:
        """Take over the newest slot of ``probe`` from ``since`` on whose claimer let its
        lease run out without finishing it; None if there is none, or another replica won."""
        now = datetime.now(UTC)
        with self.store.session() as s:
            row = s.execute(select(ProbeSlot.id, ProbeSlot.slot, ProbeSlot.claimed_by,
                                   ProbeSlot.lease_until, ProbeSlot.attempts).where(
                ProbeSlot.probe == probe, ProbeSlot.instance == self.instance,
                ProbeSlot.slot >= since, ProbeSlot.finished_at.is_(None),
                ProbeSlot.lease_until < now,
            ).order_by(ProbeSlot.slot.desc()).limit(1)).first()
            if row is None:
                return None
            until = now + timedelta(seconds=lease)
            result = s.execute(update(ProbeSlot).where(
                ProbeSlot.id == row.id, ProbeSlot.finished_at.is_(None),
                ProbeSlot.claimed_by == row.claimed_by,
                ProbeSlot.lease_until == row.lease_until,
            ).values(claimed_by=self.replica, claimed_at=now, lease_until=until,
                     attempts=row.attempts + 1))
            if _rowcount(result) != 1:
                return None
        return SlotClaim(probe, self.instance, row.slot, self.replica, until, row.attempts + 1)

    def finish(self, s: Session, claim: SlotClaim, run_id: int | None) -> bool:
        """Mark ``claim``'s slot run, inside the transaction that stores its run; False
        (nothing changed) when the claim no longer holds: the caller must roll back."""
        result = s.execute(update(ProbeSlot).where(self._held(claim)).values(
            finished_at=datetime.now(UTC), run_id=run_id))
        return _rowcount(result) == 1

    def release(self, claim: SlotClaim) -> None:
        """Give a claimed slot back unrun (the daemon is stopping): its lease ends now, so
        another replica takes it over at its next fire."""
        with self.store.session() as s:
            s.execute(update(ProbeSlot).where(self._held(claim)).values(
                lease_until=datetime.now(UTC) - timedelta(seconds=1)))

    def _held(self, claim: SlotClaim) -> Any:
        return and_(ProbeSlot.probe == claim.probe, ProbeSlot.instance == claim.instance,
                    ProbeSlot.slot == claim.slot, ProbeSlot.finished_at.is_(None),
                    ProbeSlot.claimed_by == claim.replica,
                    ProbeSlot.lease_until == claim.lease_until)

    # --- leases --------------------------------------------------------------------------
    def acquire(self, name: str, seconds: float) -> bool:
        """Hold (or renew) the lease ``name`` for ``seconds``; False while another replica
        holds it. The lease is per instance (sidecars each hold their own)."""
        from ragmon.monitor.store import insert_ignore

        key = self._lease_key(name)
        now = datetime.now(UTC)
        until = now + timedelta(seconds=seconds)
        with self.store.session() as s:
            if insert_ignore(s, Lease, {"name": key, "holder": self.replica,
                                        "acquired_at": now, "lease_until": until, "data": {}},
                             ["name"]):
                return True
            result = s.execute(update(Lease).where(
                Lease.name == key, or_(Lease.holder == self.replica, Lease.lease_until < now),
            ).values(holder=self.replica, lease_until=until))
            return _rowcount(result) == 1

    def give_up(self, name: str) -> None:
        """Let the lease ``name`` go now, if this replica holds it."""
        with self.store.session() as s:
            s.execute(update(Lease).where(
                Lease.name == self._lease_key(name), Lease.holder == self.replica,
            ).values(lease_until=datetime.now(UTC) - timedelta(seconds=1)))

    def holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` now (None when nobody does)."""
        with self.store.session() as s:
            row = s.execute(select(Lease.holder, Lease.lease_until).where(
                Lease.name == self._lease_key(name))).first()
        return row.holder if row is not None and row.lease_until >= datetime.now(UTC) else None

    def _lease_key(self, name: str) -> str:
        return f"{self.instance}/{name}" if self.instance else name


class SlotRetention(RetentionPart):
    """Claimed slots older than the retention are deleted with the history they scheduled."""

    name = "schedule"

    def prune(self, job: RetentionJob) -> None:
        job.delete_older(ProbeSlot, ProbeSlot.slot)


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)  # an UPDATE has a rowcount
    return int(result.rowcount or 0)


__all__ = ["Claims", "SlotClaim", "SlotRetention", "default_replica"]
