"""The drift summary of `ragmon probe NAME --once`: columns that stay apart whatever the
values, and the MMD kernel that computed the statistic."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from ragmon.monitor.probe import ProbeResult
from ragmon.probes.drift.methods import MethodResult
from ragmon.probes.drift.methods.mmd import mmd
from ragmon.probes.drift.render import render_result

HEADER = ["method", "statistic", "p-value", "differs", "alarm"]


def summary(results: list[MethodResult]) -> str:
    methods: dict[str, Any] = {r.method: {**r.as_dict(), "alarm": r.drifted} for r in results}
    details = {
        "source": "queries", "verdict": "compared", "n_current": 500, "n_reference": 500,
        "reference_id": 3, "reference_pinned": True, "methods": methods,
        "calibration": {"alpha": 0.0215, "rule": "k_of_n", "k": 2, "n": 3},
        "drifted": any(r.drifted for r in results), "alarm": False,
    }
    return render_result("d", ProbeResult(details=details))


def table(text: str) -> tuple[str, list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["method"])
    rows = []
    for line in lines[start + 1:]:
        if not line.startswith("  ") or line.split()[0] in ("coverage:", "cluster") or "kernel:" in line:
            break
        rows.append(line)
    return lines[start], rows


# The values of the trial where p-values ran into the neighbouring column, and the widest
# each column can get.
CASES = [
    ("classifier", 0.96421, 1.982e-141),
    ("mmd", 0.0082912345, 0.0009990009990009),
    ("centroid", 1.2345678e-05, None),
    ("norms", -0.000123456, 1.0),
    ("clusters", 123456789.0, 2.2250738585072014e-308),
]


def test_long_values_stay_in_their_columns() -> None:
    results = [MethodResult(m, s, p, None, p is not None and p < 0.05) for m, s, p in CASES]
    header, rows = table(summary(results))
    assert re.split(r"\s{2,}", header.strip()) == HEADER
    right_edges = [header.index(h) + len(h) for h in ("statistic", "p-value")]
    for row, (method, statistic, p_value) in zip(rows, CASES, strict=True):
        cells = re.split(r"\s{2,}", row.strip())
        assert len(cells) == len(HEADER), row
        assert cells[0] == method
        assert float(cells[1]) == pytest.approx(statistic, rel=1e-3)
        assert (cells[2] == "-") if p_value is None else (
            float(cells[2]) == pytest.approx(p_value, rel=1e-3))
        # numbers are right-aligned under their headers
        assert [row.index(cells[1]) + len(cells[1]), row.rindex(cells[2]) + len(cells[2])] \
            == right_edges, (header, row)


def test_summary_names_the_mmd_kernel(corpus_vectors: np.ndarray) -> None:
    ref, cur = corpus_vectors[:120], corpus_vectors[120:240]
    exact = mmd(ref, cur, permutations=50)
    text = summary([exact])
    assert "kernel: exact" in text and "240 pooled rows" in text
    approx = mmd(ref, cur, permutations=50, max_exact=200, rff_features=256)
    text = summary([approx])
    assert "kernel: rff, 256 random Fourier features" in text
    assert "240 pooled rows > max_exact 200" in text
