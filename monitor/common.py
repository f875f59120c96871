"""Cross-cutting helpers, one home each: time, JSON normalisation, secret redaction.

Every module that stores, prints or sends a timestamp, a JSON document or a message that
may carry a secret uses these, so the rules are the same everywhere (and tested once, in
tests/monitor/test_common.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np

# --- time -----------------------------------------------------------------------------------


def utc(ts: datetime) -> datetime:
    """``ts`` in UTC. A naive datetime (SQLite returns them) is taken as UTC already."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def iso(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC to the second, with ``Z``: ``2026-12-01T04:05:35Z`` (None stays None).

    Seconds are enough for people, Alertmanager and reports; sub-second digits made the same
    instant print differently in different places."""
    if ts is None:
        return None
    return utc(ts).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- JSON -----------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, datetime):
        return iso(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def json_text(data: Any) -> str:
    """``data`` as JSON text, numpy scalars and arrays, sets and datetimes converted (see
    :func:`jsonable`); the store's JSON columns are written with it."""
    return json.dumps(data, default=_json_default)


def jsonable(data: Any) -> Any:
    """``data`` as plain JSON types (numpy scalars and arrays, tuples, sets, datetimes
    converted), so no driver or sink sees a type it cannot store. Anything else raises
    ``TypeError``: silently storing ``str(obj)`` would hide a bug."""
    return json.loads(json_text(data))


# --- secrets --------------------------------------------------------------------------------

MASK = "***"


class Redactor:
    """Replaces every configured secret value in a text with ``***``.

    Every non-empty secret is replaced, longest first, so a secret that contains another
    is never left half-visible. Used on every error, log line and notification that may
    quote an engine's or a receiver's answer.
    """

    def __init__(self, secrets: Iterable[str | None] = ()):
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret value replaced by ``***``."""
    return Redactor(secrets)(text)


__all__ = ["MASK", "Redactor", "iso", "jsonable", "redact", "utc"]
