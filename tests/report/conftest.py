"""The report tests' shared history: one week of real probe runs (tests/report/history.py),
built once per session, and the rendered report of that week."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from ragmon.alerts.report.model import Rendered
from ragmon.alerts.report.render import render_report

from .history import Week, build_week


@pytest.fixture(scope="session")
def week(tmp_path_factory: pytest.TempPathFactory, minilm: Any, corpus: Any,
         corpus_vectors: np.ndarray) -> Iterator[Week]:
    w = build_week(tmp_path_factory.mktemp("week"), minilm, corpus, corpus_vectors)
    yield w
    w.close()


@pytest.fixture(scope="session")
def week_report(week: Week) -> Rendered:
    return render_report(week.store, week.loaded, week.period, now=week.period.until)
