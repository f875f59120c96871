"""Retention and the recall baseline, with real recall runs (FAISS index of MiniLM embeddings
of the stdlib corpus) on SQLite and PostgreSQL.

Found in a soak test: a prune deleted the run a user had pinned as the baseline (the pin's
foreign key cascades from ``probe_runs``), ``recall_baselines`` went from 1 row to 0, and
later runs compared against whichever healthy run came first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from ragmon.monitor.app import retention_parts
from ragmon.monitor.store.models import ProbeRun
from ragmon.probes.recall import history
from ragmon.probes.recall.tables import RecallBaseline
from ragmon.probes.references import ReferenceSample
from tests.probes.recall.conftest import Env


def test_a_pinned_baseline_outlives_the_retention(any_store_env: Env) -> None:
    env = any_store_env
    first, first_id = env.run()
    assert first.status == "ok" and first_id is not None
    history.pin_baseline(env.store, first_id, note="the index we signed off")
    second, second_id = env.run()
    assert second.details["baseline"]["how"] == "pinned"

    # Months later: both runs and the vectors they stored are older than the retention.
    long_ago = datetime.now(UTC) - timedelta(days=100)
    with env.store.session() as s:
        s.execute(update(ProbeRun).values(started_at=long_ago, finished_at=long_ago))
        s.execute(update(ReferenceSample).values(created_at=long_ago))
    assert env.context is not None
    report = env.store.prune(90 * 86400, parts=retention_parts(env.context.config))

    assert env.store.run(first_id) is not None and env.store.run(second_id) is None
    with env.store.session() as s:
        assert s.scalar(select(func.count()).select_from(RecallBaseline)) == 1
    assert report.kept["run(s) pinned as a recall baseline"] == 1
    assert "kept although older: 1 run(s) pinned as a recall baseline" in report.summary()
    assert history.load_reference(env.store, first.details["references"]["queries"])

    third, _ = env.run()
    assert third.status == "ok"
    assert (third.details["baseline"]["run_id"], third.details["baseline"]["how"]) == (
        first_id, "pinned")
    assert third.details["verdict"] == "healthy", third.details["reasons"]
