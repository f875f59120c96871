"""The HTTP adapter against a real search service on 127.0.0.1: mapping, auth from secrets,
no exact mode without a second endpoint, and every way the service can go wrong."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ragmon.monitor.errors import TargetError, TargetResponseError, TargetUnavailable
from ragmon.monitor.targets import VectorTarget

Build = Callable[..., VectorTarget]
TOKEN = "s3cret-token-value"  # tests/targets/conftest.py: HTTP_TOKEN


def test_without_exact_url_fidelity_is_not_measurable(build: Build, http_config: Any,
                                                      search_service: Any, data: Any) -> None:
    target = build("app", http_config(search_service.url + "/search"))
    assert target.supports_exact is False and target.supports_fetch is False
    assert len(target.search(data.queries[:2], 5).ids[0]) == 5
    with pytest.raises(TargetError, match="has no exact search: set exact_url"):
        target.exact_search(data.queries[:2], 5)
    with_exact = build("app", http_config(search_service.url + "/search",
                                          exact_url=search_service.url + "/exact"))
    assert with_exact.supports_exact is True


def test_auth_header_comes_from_a_secret_and_never_shows(build: Build, http_config: Any,
                                                         search_service: Any, data: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TOKEN", f"Bearer {TOKEN}")
    good = build("app", http_config(search_service.url + "/search",
                                    headers={"Authorization": {"env": "APP_TOKEN"}}))
    assert len(good.search(data.queries[:1], 3).ids[0]) == 3
    bad = build("app", http_config(search_service.url + "/search",
                                   headers={"Authorization": "Bearer wrong-token-xyz"}))
    with pytest.raises(TargetError) as info:
        bad.search(data.queries[:1], 3)
    assert str(info.value) == (f"target 'app': {search_service.url}/search answered HTTP 401; "
                               "check the auth headers")
    assert "wrong-token-xyz" not in str(info.value) and TOKEN not in str(info.value)
    assert "wrong-token-xyz" not in json.dumps(bad.describe().params)


@pytest.mark.parametrize(("path", "error", "message"), [
    ("/bad", TargetResponseError,
     "{url}/bad: 'data.matches.0.similarity' is str, not a number"),
    ("/missing", TargetResponseError,
     "{url}/missing: the response has no 'data.matches' (expected by response mapping "
     "'data.matches')"),
    ("/down", TargetUnavailable, "{url}/down answered HTTP 503"),
    ("/html", TargetResponseError, "{url}/html did not answer JSON"),
])
def test_malformed_and_failing_answers_are_named(build: Build, http_config: Any,
                                                 search_service: Any, data: Any, path: str,
                                                 error: type[Exception], message: str) -> None:
    target = build("app", http_config(search_service.url + path))
    with pytest.raises(error) as info:
        target.search(data.queries[:1], 3)
    assert str(info.value) == "target 'app': " + message.format(url=search_service.url)


def test_a_slow_endpoint_times_out(build: Build, http_config: Any, search_service: Any,
                                   data: Any) -> None:
    target = build("app", http_config(search_service.url + "/slow", timeout="300ms"))
    with pytest.raises(TargetUnavailable, match=r"target 'app': http://127.0.0.1:\d+/slow did "
                       r"not answer within 0.3s"):
        target.search(data.queries[:1], 3)


def test_an_endpoint_that_is_down_is_unavailable(build: Build, http_config: Any,
                                                 data: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = build("app", http_config(f"http://user:pw-in-url@127.0.0.1:{port}/search?key=abc"))
    with pytest.raises(TargetUnavailable) as info:
        target.search(data.queries[:1], 3)
    message = str(info.value)
    assert message.startswith(f"target 'app': http://127.0.0.1:{port}/search is unreachable")
    assert "pw-in-url" not in message and "key=abc" not in message


@pytest.fixture
def text_service() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An endpoint that embeds queries itself: records the bodies it got."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            hits = [{"id": f"doc-{n}", "score": 1.0 - n / 10} for n in range(body["size"])]
            raw = json.dumps({"results": hits}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/q", seen
    server.shutdown()
    server.server_close()


def test_text_queries_and_filters_go_where_the_mapping_says(build: Build,
                                                            text_service: Any) -> None:
    url, seen = text_service
    target = build("app", {"kind": "http", "url": url, "method": "PUT", "send": "text",
                           "request": {"query": "q.text", "k": "size", "filter": "where",
                                       "body": {"index": "kb"}}})
    assert target.query_input == "text"
    result = target.search(None, 2, {"lang": "en"}, texts=["how do I parse json?"])  # type: ignore[arg-type]
    assert result.ids == [["doc-0", "doc-1"]] and result.scores == [[1.0, 0.9]]
    assert seen == [{"index": "kb", "q": {"text": "how do I parse json?"}, "size": 2,
                     "where": {"lang": "en"}}]
    with pytest.raises(TargetError, match="this endpoint takes query texts"):
        target.search(None, 2)  # type: ignore[arg-type]
