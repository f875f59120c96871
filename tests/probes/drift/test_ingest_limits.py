"""The ingest endpoint against bad input, each case found in a real trial, on real parts:
ragmon's HTTP server, the store, the drift probe's runner and the bundled MiniLM.

- a batch of 10-dim vectors sent to a 384-dim probe was accepted, and every later drift
  run failed with "vectors of mixed dimensions [10, 384]", the window never reset;
- ``Content-Length: -1`` with a 3 MB body passed a 1 MB ``max_request_bytes`` (the body
  was read to EOF);
- JSON nested 100,000 deep gave 500 (RecursionError).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from ragmon.monitor.config import ServerConfig
from ragmon.monitor.http import App, HttpServer
from ragmon.probes.drift import state
from ragmon.probes.drift.ingest import IngestApp, drift_probes, poll_jsonl
from ragmon.probes.drift.state import Item, add_items, peek_window
from ragmon.probes.references import save_reference
from tests.probes.drift.conftest import PROBE, DriftEnv

TOKEN = "s3cret-token"


class Server:
    """IngestApp on ragmon's HTTP server; ``context`` gives it the loaded embedder."""

    def __init__(self, env: DriftEnv, context: Any = None, **server: Any):
        app = IngestApp(env.store, drift_probes(env.config), context)
        self.http = HttpServer(App(CollectorRegistry(), lambda: (True, "ok"),
                                   lambda: (True, "ok"), {"/ingest": app}),
                               "127.0.0.1", 0, ServerConfig(**server))
        self.http.start()

    def raw(self, head: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | str]:
        """POST with exactly these headers. The body is sent only if no answer came first
        (a server that refuses on the headers alone answers at once)."""
        lines = [f"POST /ingest/{PROBE} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
                 f"Authorization: Bearer {TOKEN}", *(f"{k}: {v}" for k, v in head.items())]
        with socket.create_connection(("127.0.0.1", self.http.port), timeout=30) as conn:
            conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            conn.settimeout(1.0)
            try:
                answer = conn.recv(1 << 16)
            except TimeoutError:
                answer = b""
            if not answer:
                try:
                    conn.sendall(body)
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            conn.settimeout(30)
            try:
                while chunk := conn.recv(1 << 16):
                    answer += chunk
            except ConnectionResetError:  # refused while the body was still being sent
                return 0, "reset"
        head_part, _, payload = answer.partition(b"\r\n\r\n")
        status = int(head_part.split()[1])
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload.decode()

    def post(self, payload: Any) -> tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.raw({"Content-Type": "application/json",
                         "Content-Length": str(len(body))}, body)

    def close(self) -> None:
        self.http.stop()


@pytest.fixture
def server(drift_env: DriftEnv) -> Iterator[Server]:
    s = Server(drift_env)
    yield s
    s.close()


def vectors(n: int, dim: int, seed: int = 0) -> list[list[float]]:
    rows = np.random.default_rng(seed).normal(size=(n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).round(6).tolist()


def stored(env: DriftEnv) -> list[Item]:
    return peek_window(env.store, PROBE).items


# --- dimensions ------------------------------------------------------------------------------


def test_vectors_of_another_dimension_are_refused_naming_both(drift_env: DriftEnv) -> None:
    """The probe's embedder (MiniLM, 384-d) is loaded: a 10-d batch gets 400 naming 10 and
    384, nothing is stored, and the probe keeps running on its window."""
    assert drift_env.minilm.dimension == 384  # loaded, as after the probe's first run
    server = Server(drift_env, drift_env.context)
    try:
        status, body = server.post({"vectors": vectors(5, 10)})
        assert status == 400, body
        assert "dimension 10" in body["error"] and "dimension 384" in body["error"]
        assert "embedder" in body["error"]
        assert stored(drift_env) == []
        rows = drift_env.windows.pool[:120]
        assert server.post({"queries": drift_env.items(rows)}) == (200, {"accepted": 120})
        status, body = server.post({"queries": [{"query": "q", "vector": [0.5] * 10}]})
        assert status == 400 and "dimension 10" in body["error"]
    finally:
        server.close()
    result, _ = drift_env.run_probe()
    assert result.status == "ok", result.error
    assert result.details["verdict"] == "reference captured"


def test_without_the_embedder_the_window_or_the_reference_decides(drift_env: DriftEnv,
                                                                  server: Server) -> None:
    """Before the model is loaded: the vectors already in the window set the dimension;
    with an empty window, the stored reference does."""
    assert server.post({"vectors": vectors(3, 384)}) == (200, {"accepted": 3})
    status, body = server.post({"vectors": vectors(2, 10)})
    assert status == 400 and "dimension 10" in body["error"]
    assert "dimension 384 (that of its current window)" in body["error"]
    state.reset_window(drift_env.store, PROBE, peek_window(drift_env.store, PROBE).end)
    save_reference(drift_env.store, PROBE, "queries", "pipeline",
                   np.asarray(vectors(60, 384), np.float32), [], pinned=True)
    status, body = server.post({"vectors": vectors(2, 10)})
    assert status == 400 and "dimension 384 (its reference's)" in body["error"]
    assert stored(drift_env) == []
    assert server.post({"texts": ["text only is fine"]}) == (200, {"accepted": 1})


def test_a_window_poisoned_by_an_older_version_is_repaired(drift_env: DriftEnv,
                                                           caplog: Any) -> None:
    """A window holding 10-d rows beside 384-d ones (an older version stored whatever
    arrived): the run drops the minority rows with one log line and goes on."""
    w = drift_env.windows
    good = [Item(w.texts[r], w.vectors[r], str(r)) for r in w.pool[:300]]
    bad = [Item(f"bad {i}", np.ones(10, np.float32), f"bad-{i}") for i in range(10)]
    add_items(drift_env.store, PROBE, good[:150] + bad + good[150:], 1000)
    caplog.set_level(logging.WARNING, "ragmon.drift")
    result, _ = drift_env.run_probe()
    assert result.status == "ok", result.error
    assert result.details["verdict"] == "reference captured"
    assert result.details["n_current"] == 300
    lines = [r.getMessage() for r in caplog.records if "mixed dimensions" in r.getMessage()]
    assert lines == [f"drift probe {PROBE!r}: the current window held vectors of mixed "
                     "dimensions (300 of dimension 384, 10 of dimension 10); dropped the 10 "
                     "row(s) not of dimension 384"]


def test_a_window_split_evenly_between_dimensions_is_reset(store: Any, caplog: Any) -> None:
    """On SQLite and PostgreSQL: with no majority there is nothing to keep."""
    add_items(store, PROBE, [Item(None, np.ones(d, np.float32), f"{d}-{i}")
                             for d in (10, 20) for i in range(5)], 100)
    assert state.window_dimensions(store, PROBE) == {10: 5, 20: 5}
    caplog.set_level(logging.WARNING, "ragmon.drift")
    window = peek_window(store, PROBE)
    assert window.items == [] and window.seen == 0
    assert any("none is the majority; started a new window" in r.getMessage()
               for r in caplog.records)
    add_items(store, PROBE, [Item(None, np.ones(7, np.float32))], 100)
    assert state.window_dimensions(store, PROBE) == {7: 1}


def test_the_query_log_skips_lines_of_another_dimension(drift_env: DriftEnv,
                                                        caplog: Any) -> None:
    cfg = drift_env.config.probes[PROBE]
    lines = [{"query": f"q{i}", "vector": v} for i, v in enumerate(vectors(4, 384))]
    lines.insert(2, {"query": "odd", "vector": [1.0] * 10})
    Path(cfg.queries.jsonl).write_text("".join(json.dumps(x) + "\n" for x in lines))
    caplog.set_level(logging.WARNING, "ragmon.drift.ingest")
    assert poll_jsonl(drift_env.store, PROBE, cfg) == 4
    assert {it.vector.size for it in stored(drift_env)} == {384}
    assert state.tail_state(drift_env.store, PROBE)["bad_lines"] == 1
    assert any("skipping 1 line(s)" in r.getMessage() and "dimension 10" in r.getMessage()
               for r in caplog.records)


# --- Content-Length and body limits ----------------------------------------------------------


def call(app: IngestApp, length: str | None, body: bytes) -> tuple[str, dict[str, Any]]:
    """IngestApp called as any WSGI server would call it."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": f"/ingest/{PROBE}",
        "HTTP_AUTHORIZATION": f"Bearer {TOKEN}", "wsgi.input": io.BytesIO(body),
    }
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    return app.handle(environ)


def test_a_missing_negative_or_malformed_length_is_refused(drift_env: DriftEnv,
                                                           server: Server) -> None:
    good = json.dumps({"texts": ["hello"]}).encode()
    big = json.dumps({"texts": ["x" * 1000] * 3000}).encode()  # 3 MB; the limit is 1 MiB
    # Through the production server: a negative length never reaches the app.
    status, body = server.raw({"Content-Type": "application/json", "Content-Length": "-1"},
                              big)
    assert status == 400, body
    # The endpoint itself refuses it too, under any WSGI server.
    app = IngestApp(drift_env.store, drift_probes(drift_env.config))
    for length in ("-1", "abc", "1e3", " -0", "+12", "１２"):
        status_line, answer = call(app, length, big)
        assert status_line == "400 Bad Request", (length, answer)
        assert "invalid Content-Length" in answer["error"]
    for length in (None, ""):
        assert call(app, length, good)[0] == "411 Length Required"
    assert call(app, str(len(good) + 5), good)[0] == "400 Bad Request"  # body cut short
    assert stored(drift_env) == []
    assert call(app, str(len(good)), good) == ("200 OK", {"accepted": 1})


def test_the_servers_body_limit_applies_to_ingest(drift_env: DriftEnv) -> None:
    """A probe allowing 4 MiB behind a server allowing 1 MiB: a 3 MB batch gets 413 from
    the server, whatever the length header says; chunked bodies are limited too."""
    drift_env.probe["queries"]["max_request_bytes"] = 4 << 20
    drift_env.reload()
    server = Server(drift_env, max_request_bytes=1 << 20)
    try:
        big = json.dumps({"texts": ["x" * 1000] * 3000}).encode()
        status, _ = server.post(big)
        assert status == 413
        status, _ = server.raw({"Content-Length": "-1"}, big)
        assert status == 400
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 65536]), big[i:i + 65536])
                           for i in range(0, len(big), 65536)) + b"0\r\n\r\n"
        status, _ = server.raw({"Transfer-Encoding": "chunked"}, chunked)
        assert status in (413, 0)  # 0: reset while sending, after the 413 (no length ahead)
        assert stored(drift_env) == []
        small = json.dumps({"texts": ["a", "b"]}).encode()
        status, body = server.raw({"Transfer-Encoding": "chunked"},
                                  b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
        assert (status, body) == (200, {"accepted": 2})
    finally:
        server.close()


# --- nesting ---------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_400_with_one_line(drift_env: DriftEnv,
                                                   server: Server) -> None:
    for body in ("[" * 100_000 + "]" * 100_000,
                 '{"queries": ' + "[" * 100_000 + "]" * 100_000 + "}",
                 '{"vectors": [' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "]}"):
        status, answer = server.post(body.encode())
        assert status == 400, answer
        assert answer == {"error": "body is nested too deeply to be a batch"}
    assert stored(drift_env) == []
    # The query log: such a line is a corrupt line, skipped; the tail goes on past it.
    cfg = drift_env.config.probes[PROBE]
    Path(cfg.queries.jsonl).write_text("[" * 100_000 + "]" * 100_000 + "\n"
                                       + json.dumps({"query": "after"}) + "\n")
    assert poll_jsonl(drift_env.store, PROBE, cfg) == 1
    assert [it.text for it in stored(drift_env)] == ["after"]
    assert state.tail_state(drift_env.store, PROBE)["bad_lines"] == 1


# --- batch size and compact vectors ----------------------------------------------------------


def b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode()


def test_the_default_limits_take_a_thousand_real_vectors_as_json_numbers(
        drift_env: DriftEnv, server: Server) -> None:
    """1 MiB took about 110 MiniLM vectors written as JSON numbers; the defaults of the
    server and of the probe take 1,000 (about 8 MB) in one request."""
    rows = drift_env.windows.pool[:1000]
    body = json.dumps({"queries": drift_env.items(rows)}).encode()
    assert len(body) > 4 << 20
    assert server.post(body) == (200, {"accepted": 1000})
    assert len(stored(drift_env)) == 400  # the reservoir keeps window_size of them


def test_base64_float32_vectors_are_stored_bit_for_bit(drift_env: DriftEnv,
                                                       server: Server) -> None:
    w = drift_env.windows
    rows = w.pool[:6]
    items = [{"query": w.texts[r], "vector": b64(w.vectors[r]), "id": str(r)} for r in rows[:3]]
    items.append({"query": w.texts[rows[3]], "vector": w.vectors[rows[3]].tolist()})
    assert server.post({"queries": items}) == (200, {"accepted": 4})
    assert server.post({"vectors": [b64(w.vectors[r]) for r in rows[4:]]}) == (
        200, {"accepted": 2})
    got = {it.text: it.vector for it in stored(drift_env)}
    for r in rows[:4]:
        assert got[w.texts[r]].dtype == np.float32
        assert got[w.texts[r]].tobytes() == w.vectors[r].tobytes()
    kept = sorted(it.vector.tobytes() for it in stored(drift_env) if it.text is None)
    assert kept == sorted(w.vectors[r].tobytes() for r in rows[4:])
    # The query log takes the same encoding.
    cfg = drift_env.config.probes[PROBE]
    Path(cfg.queries.jsonl).write_text(json.dumps({"query": "logged",
                                                   "vector": b64(w.vectors[rows[5]])}) + "\n")
    assert poll_jsonl(drift_env.store, PROBE, cfg) == 1


def test_bad_base64_vectors_get_one_line_naming_the_item(drift_env: DriftEnv,
                                                         server: Server) -> None:
    v = drift_env.windows.vectors[drift_env.windows.pool[0]]
    raw = np.asarray(v, "<f4").tobytes()
    nan = np.asarray(v, "<f4").copy()
    nan[5] = np.nan
    cases = {
        "not base64!": "item 1: 'vector' is not valid base64",
        base64.b64encode(raw[:-1]).decode(): (
            "item 1: 'vector' decodes to 1535 bytes, not a whole number of little-endian "
            "float32 values (4 bytes each)"),
        "": "item 1: 'vector' is an empty string",
        b64(nan): "item 1: 'vector' contains NaN or Inf",
        b64(np.ones(10)): "batch: vectors of mixed dimensions [10, 384]",
    }
    for value, message in cases.items():
        status, body = server.post({"queries": [{"query": "ok", "vector": b64(v)},
                                                {"query": "bad", "vector": value}]})
        assert status == 400, (value, body)
        assert body["error"].startswith(message), body
        assert "\n" not in body["error"]
    assert stored(drift_env) == []
