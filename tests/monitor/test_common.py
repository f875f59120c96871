"""The cross-cutting helpers: time, JSON normalisation, secret redaction (tested once here;
every module uses these)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from ragmon.monitor.common import Redactor, iso, json_text, jsonable, redact, utc


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
    with pytest.raises(TypeError, match="^object is not JSON serializable$"):
        jsonable({"x": object()})
    with pytest.raises(TypeError, match="^Point is not JSON serializable$"):
        jsonable({"x": Point(1, 2)})  # a dataclass is refused too, not stored by its fields


def test_json_text_says_what_json_dumps_says() -> None:
    """orjson writes the store's JSON where it says the same as json.dumps; NaN and
    Infinity (orjson: null), 128-bit integers and lone surrogates (orjson: refused) are
    written by json.dumps, so they read back as they were."""
    from ragmon.monitor.common import _json_default

    rows = {"rows": [{"recall": {"10": 1 / 3}, "ids": ["a", "b"]}] * 3, 7: np.float64(2.5)}
    one = '{"recall":{"10":0.3333333333333333},"ids":["a","b"]}'
    assert json_text(rows) == f'{{"rows":[{one},{one},{one}],"7":2.5}}'  # orjson, compact
    for data in ({"l": [1, None, "x"], "s": {2, 1}}, {"big": 2**70}, {"t": "a\ud800b"},
                 {"n": float("nan"), "i": float("-inf")}):
        assert json_text(data) == json.dumps(data, default=_json_default)
    back = json.loads(json_text({"n": float("nan"), "i": float("-inf")}))
    assert math.isnan(back["n"]) and back["i"] == float("-inf")
    assert jsonable({"x": float("inf")}) == {"x": float("inf")}


@dataclass
class Point:
    x: int
    y: int


def test_every_secret_is_redacted_longest_first() -> None:
    redactor = Redactor(["pw", "pw-long-secret", "", None])
    assert redactor("user pw-long-secret then pw") == "user *** then ***"
    assert redact("token=ab", ["ab"]) == "token=***"  # short secrets too: strict
    assert Redactor()("nothing to hide") == "nothing to hide"
