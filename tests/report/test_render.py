"""How the report looks: every ``cid:`` of the email HTML is one of its images, the file is
self-contained, user data is escaped, charts are small PNGs with their summaries in the
text part, and the thin cases (failed probes only, one data point, a chart that cannot be
drawn) say so in words. History is stored with ``Store.record_run`` on SQLite and on a real
PostgreSQL, in the shape the recall and canary probes store it."""

from __future__ import annotations

import base64
import re
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ragmon.alerts.report.charts import Series, trend
from ragmon.alerts.report.model import Period, Rendered
from ragmon.alerts.report.render import render_report
from ragmon.monitor.app import validate_raw
from ragmon.monitor.config import RootConfig
from ragmon.monitor.store import RunRecord, Store

UNTIL = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
WEEK = Period(UNTIL - timedelta(days=7), UNTIL)
HOSTILE = "<script>alert('x')</script> & <b>bold</b>"


def config(folder: Path, store_url: str) -> RootConfig:
    raw = {
        "store": {"url": store_url},
        "embedders": {"minilm": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}},
        "targets": {"docs": {"kind": "faiss", "path": "index.faiss", "embedder": "minilm"}},
        "golden_sets": {"g": {"path": "golden.jsonl"}},
        "probes": {"docs-recall": {"kind": "recall", "target": "docs", "golden_set": "g"},
                   "canary": {"kind": "canary", "embedder": "minilm"}},
    }
    return validate_raw(raw, str(folder / "ragmon.yaml"), folder)


def recall_run(store: Store, at: datetime, live: float, exact: float = 0.9) -> int:
    return store.record_run(RunRecord(
        probe="docs-recall", kind="recall", target="docs", started_at=at,
        finished_at=at + timedelta(seconds=3), status="ok", golden_version="v1",
        details={"verdict": "healthy", "verdict_k": 10, "k": [10], "level": "chunk",
                 "golden": {"name": "g", "version": "v1"}},
        values=[("recall_ratio", {"k": 10, "mode": "live"}, live),
                ("recall_ratio", {"k": 10, "mode": "exact"}, exact),
                ("ndcg_ratio", {"k": 10, "mode": "live"}, live - 0.1),
                ("mrr_ratio", {"mode": "live"}, live - 0.2),
                ("index_fidelity_ratio", {"k": 10}, 0.99),
                ("search_latency_seconds", {"stat": "p95"}, 0.004),
                ("index_vectors", {}, 2561)],
        queries=[("q1", "ok", {"live": {"recall": {"10": live}, "relevant_ranks": {"d1": 2}}})],
    ))


def failed_run(store: Store, probe: str, kind: str, at: datetime, error: str) -> None:
    store.record_run(RunRecord(probe=probe, kind=kind, target=None, started_at=at,
                               finished_at=at + timedelta(seconds=1), status="failed",
                               error=error))


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_email_html_refers_to_its_images_and_the_file_embeds_them(
        week_report: Rendered) -> None:
    r = week_report
    cids = re.findall(r'src="cid:([^"]+)"', r.html_email)
    assert len(r.images) >= 7 and sorted(cids) == sorted(i.cid for i in r.images)
    assert len({i.cid for i in r.images}) == len(r.images)
    assert "cid:" not in r.html_file
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', r.html_file)
    assert [base64.b64decode(e) for e in embedded] == [i.png for i in r.images]
    for html in (r.html_email, r.html_file):  # nothing a mail client would fetch or run
        assert not re.search(r"<script|<link|@import|https?://|url\(", html, re.I)
    for image in r.images:
        assert png_size(image.png) == (640, 240)
        assert len(image.png) < 60_000
        assert image.summary in " ".join(r.text.split())  # readable with images blocked
        assert f'alt="{image.summary}"' in r.html_email.replace("&#39;", "'")
    assert r.subject.startswith("ragmon weekly report 2026-11-23 08:00 to 2026-11-30 08:00 "
                                "UTC: degraded - ") and "\n" not in r.subject


def test_a_period_with_failed_probes_only_says_so(tmp_path: Path, store: Store) -> None:
    cfg = config(tmp_path, store.safe_url)
    for day in range(3):
        at = WEEK.since + timedelta(days=day + 1)
        failed_run(store, "docs-recall", "recall", at, f"target docs: index file not found {HOSTILE}")
        failed_run(store, "canary", "canary", at, "embedder minilm: model directory missing")
    r = render_report(store, cfg, WEEK, now=UNTIL)
    assert r.status == "failing"
    assert r.images == []
    text = " ".join(r.text.split())
    assert "FAILING: every one of the 6 probe runs failed." in text
    assert "All 6 probe runs of this period failed: there are no measurements" in text
    assert "index file not found <script>" in text  # the text part is plain text
    assert "model directory missing" in text
    assert "<script>" not in r.html_file and "&lt;script&gt;" in r.html_file
    assert 'id="housekeeping"' in r.html_file and 'id="recall-' not in r.html_file


def test_one_data_point_degrades_every_chart_to_its_summary(tmp_path: Path,
                                                           store: Store) -> None:
    cfg = config(tmp_path, store.safe_url)
    recall_run(store, WEEK.previous().since + timedelta(days=3), 0.9)
    recall_run(store, WEEK.since + timedelta(days=2), 0.75)
    r = render_report(store, cfg, WEEK, now=UNTIL)
    assert r.images == [] and "<img" not in r.html_file
    text = " ".join(r.text.split())
    assert "[chart] recall@10 of docs-recall: live 0.750 (0.900, -0.150); exact 0.900 " \
           "(0.900, +0.000)." in text
    assert "recall@10 of docs-recall: live 0.750 (0.900, -0.150)" in r.html_file
    assert r.status == "degraded"  # a drop of 0.15 against the previous period
    assert "DEGRADED: live recall@10 of docs-recall fell from 0.900 to 0.750" in text


def test_two_points_draw_and_an_absurd_series_degrades() -> None:
    t0 = WEEK.since
    drawn = trend("recall", [Series("live", [(t0, 0.5), (t0 + timedelta(days=1), 0.6)])],
                  "two points")
    assert drawn.image is not None and png_size(drawn.image.png) == (640, 240)
    absurd = trend("overflow", [Series("x", [(t0, 1e308), (t0 + timedelta(days=1), -1e308)])],
                   "values too large to draw")
    assert absurd.image is None and absurd.summary == "values too large to draw"


def test_numbers_on_both_backends(tmp_path: Path, store: Store) -> None:
    cfg = config(tmp_path, store.safe_url)
    previous = [0.8, 0.9]
    current = [0.6, 0.7, 0.5, 0.8]
    for i, live in enumerate(previous):
        recall_run(store, WEEK.previous().since + timedelta(days=2 * i + 1), live)
    for i, live in enumerate(current):
        recall_run(store, WEEK.since + timedelta(days=i + 1), live)
    recall_run(store, UNTIL, 0.1)  # the end is excluded: it belongs to the next period
    r = render_report(store, cfg, WEEK, now=UNTIL)
    line = next(x for x in r.text.splitlines() if x.startswith("recall@10 live"))
    assert line.split()[2:] == ["0.650", "(0.850,", "-0.200)", "0.800"]
    assert len(r.images) >= 4  # recall, nDCG, MRR, fidelity, index count
    assert re.search(r"^docs-recall\s+recall\s+4\s+100%\s+100%", r.text, re.M)
    assert re.search(r"^canary\s+canary\s+0\s+-\s+-\s+never ran", r.text, re.M)


def test_sidecars_are_compared_within_their_own_history(tmp_path: Path, store: Store) -> None:
    cfg = config(tmp_path, store.safe_url)
    pods = {pod: Store(store.engine.url.render_as_string(hide_password=False), instance=pod)
            for pod in ("pod-a", "pod-b")}
    previous = {}
    try:
        for pod, (before, now) in {"pod-a": (0.8, [0.8, 0.82]),
                                   "pod-b": (0.9, [0.9, 0.4])}.items():
            previous[pod] = recall_run(pods[pod], WEEK.previous().since + timedelta(days=3),
                                       before)
            for day, live in enumerate(now):
                recall_run(pods[pod], WEEK.since + timedelta(days=day + 1, hours=len(pod)), live)
        with pods["pod-b"].session() as s:  # pod-b's newest run blames its index
            from ragmon.monitor.store.models import ProbeRun

            newest = s.query(ProbeRun).filter_by(instance="pod-b").order_by(
                ProbeRun.id.desc()).first()
            newest.details = {**newest.details, "verdict": "index"}
    finally:
        for pod_store in pods.values():
            pod_store.close()
    r = render_report(store, cfg, WEEK, now=UNTIL)
    text = " ".join(r.text.split())
    assert ("DEGRADED: docs-recall: recall is degraded on 1 of 2 instances (pod-b), attributed "
            "to the index") in text
    assert "2 instances, lowest pod-b at 0.650" in text
    # pod-b's worst run against pod-b's own run before the period, not pod-a's
    assert re.search(rf"lowest live recall@10 was run \d+ on pod-b .* against run "
                     rf"{previous['pod-b']} \(Thu 19 Nov 08:00\): 1 of 1 queries fell", text)
    assert re.search(r"^docs-recall \(2 instances\)\s+recall\s+4\s+100%", r.text, re.M)


def test_a_changed_pipeline_and_an_edited_golden_set_are_told(tmp_path: Path,
                                                              store: Store) -> None:
    cfg = config(tmp_path, store.safe_url)
    for day, (changed, cosine) in enumerate([(0, 1.0), (0, 1.0), (1, 0.93), (1, 0.93)]):
        at = WEEK.since + timedelta(days=day + 1)
        store.record_run(RunRecord(
            probe="canary", kind="canary", target=None, started_at=at, finished_at=at,
            status="ok", embedder_fingerprint="fp-old" if not changed else "fp-new",
            details={"verdict": "changed" if changed else "unchanged", "fingerprint_diff":
                     {"max_seq_length": [256, 128]} if changed else {}},
            values=[("canary_changed", {"embedder": "minilm"}, changed),
                    ("canary_cosine_min", {"embedder": "minilm"}, cosine)]))
    recall_run(store, WEEK.since + timedelta(days=1), 0.8)
    run = recall_run(store, WEEK.since + timedelta(days=3), 0.8)
    with store.session() as s:  # the golden set was edited between the two runs
        from ragmon.monitor.store.models import ProbeRun

        edited = s.get(ProbeRun, run)
        edited.golden_version = "v2"
    r = render_report(store, cfg, WEEK, now=UNTIL)
    text = " ".join(r.text.split())
    assert ("canary: the embedding pipeline CHANGED, first seen Thu 26 Nov 08:00 (2 of 4 "
            "runs): max_seq_length 256 -> 128; lowest canary cosine 0.930000.") in text
    assert "DEGRADED: the embedding pipeline changed on Thu 26 Nov 08:00 (canary canary)." in text
    assert "fp-old from Tue 24 Nov 08:00, fp-new from Thu 26 Nov 08:00" in text
    assert "Golden set versions used in this period (edited during the period):" in text
    assert re.search(r"^g\s+v1\s+-\s+Tue 24 Nov 08:00$", r.text, re.M)
    assert re.search(r"^g\s+v2\s+-\s+Thu 26 Nov 08:00$", r.text, re.M)


def test_a_part_that_cannot_be_built_is_said_and_the_rest_stands(tmp_path: Path,
                                                                 store: Store) -> None:
    cfg = config(tmp_path, store.safe_url)
    recall_run(store, WEEK.since + timedelta(days=1), 0.8)
    run = recall_run(store, WEEK.since + timedelta(days=2), 0.7)
    with store.session() as s:  # details written by another version, unreadable here
        from ragmon.monitor.store.models import ProbeRun

        odd = s.get(ProbeRun, run)
        odd.details = {**odd.details, "verdict_k": "ten"}
    r = render_report(store, cfg, WEEK, now=UNTIL)
    text = " ".join(r.text.split())
    assert ("== Recall: docs-recall == This part could not be built from the stored history "
            "(ValueError: invalid literal for int() with base 10: 'ten'); the rest of the "
            "report stands.") in text
    assert "== Housekeeping ==" in text and "== Alerts ==" in text
    assert r.status == "degraded"
    assert "DEGRADED: the recall part of docs-recall could not be built." in text
