"""The cross-cutting helpers: time, JSON normalisation, secret redaction (tested once here;
every module uses these)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from ragmon.monitor.common import Redactor, iso, jsonable, redact, utc


def test_utc_takes_naive_as_utc_and_converts_aware() -> None:
    naive = datetime(2026, 12, 1, 4, 5, 6, 789)
    assert utc(naive) == naive.replace(tzinfo=UTC)
    plus_two = datetime(2026, 12, 1, 6, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert utc(plus_two).tzinfo is UTC and utc(plus_two).hour == 4


def test_iso_is_utc_to_the_second_with_z() -> None:
    ts = datetime(2026, 12, 1, 6, 5, 6, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert iso(ts) == "2026-12-01T04:05:06Z"
    assert iso(datetime(2026, 12, 1)) == "2026-12-01T00:00:00Z"
    assert iso(None) is None


def test_jsonable_converts_numpy_tuples_sets_and_datetimes() -> None:
    data = {"a": np.float32(0.5), "b": np.arange(3), "c": (1, 2), "d": {3, 1},
            "e": datetime(2026, 1, 2, tzinfo=UTC), "f": np.int64(7), "g": np.bool_(True)}
    assert jsonable(data) == {"a": 0.5, "b": [0, 1, 2], "c": [1, 2], "d": [1, 3],
                              "e": "2026-01-02T00:00:00Z", "f": 7, "g": True}


def test_jsonable_refuses_what_it_cannot_store_faithfully() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        jsonable({"x": object()})


def test_every_secret_is_redacted_longest_first() -> None:
    redactor = Redactor(["pw", "pw-long-secret", "", None])
    assert redactor("user pw-long-secret then pw") == "user *** then ***"
    assert redact("token=ab", ["ab"]) == "token=***"  # short secrets too: strict
    assert Redactor()("nothing to hide") == "nothing to hide"
