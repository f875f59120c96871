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
import orjson

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


#: orjson's options for :func:`json_text`: keys that are not strings become strings (as
#: ``json.dumps`` does), and datetimes and dataclasses go through ``_json_default`` (ISO in
#: UTC; a dataclass is refused, never silently stored).
_ORJSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | \
    orjson.OPT_PASSTHROUGH_DATACLASS


def json_text(data: Any) -> str:
    """``data`` as JSON text, numpy scalars and arrays, sets and datetimes converted (see
    :func:`jsonable`); the store's JSON columns are written with it.

    orjson writes it when it can say the same as ``json.dumps``: a 1,000-query recall run
    stores ~1.2 MB of rows, which ``json.dumps`` took 4x as long to write. Where orjson
    would say something else, ``json.dumps`` writes it: text with a ``null`` in it (orjson
    writes NaN and Infinity as null; ``json.dumps`` keeps them, and reading them back gives
    the same floats), integers beyond 64 bits and strings with a lone surrogate (orjson
    refuses them). orjson also writes enums and UUIDs by their value."""
    try:
        text = orjson.dumps(data, default=_json_default, option=_ORJSON)
    except orjson.JSONEncodeError:
        return _stdlib_text(data)  # refused by orjson: json.dumps writes it or says why
    if b"null" in text:
        return _stdlib_text(data)
    return text.decode()


def _stdlib_text(data: Any) -> str:
    return json.dumps(data, default=_json_default)


def jsonable(data: Any) -> Any:
    """``data`` as plain JSON types (numpy scalars and arrays, tuples, sets, datetimes
    converted), so no driver or sink sees a type it cannot store. Anything else raises
    ``TypeError``: silently storing ``str(obj)`` would hide a bug."""
    return json.loads(_stdlib_text(data))


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
