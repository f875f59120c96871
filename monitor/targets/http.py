"""A RAG application's own search endpoint, over HTTP with a configurable JSON mapping.

For teams whose index sits behind a service: ragmon sends each query the way the app
expects it and reads ids and scores back from where the app puts them. Paths are dotted
(``query.vector``, ``data.hits``); a numeric part indexes a list (``results.0``).

The endpoint is the live search. There is no exact mode unless ``exact_url`` names a second
endpoint with the same request and response shapes (``supports_exact`` is False otherwise,
and the recall probe reports fidelity as not measurable). Stored vectors cannot be read
back (``supports_fetch`` False). Header values are secrets: they never appear in errors.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from pydantic import Field, field_validator

from ragmon.monitor.config import Secret, Strict, TargetConfig
from ragmon.monitor.errors import TargetError, TargetResponseError, TargetUnavailable
from ragmon.monitor.targets._exact import Budget
from ragmon.monitor.targets._helpers import check_k, engine_errors, timed_per_query
from ragmon.monitor.targets.abc import Description, Metric, SearchResult, Vectors, VectorTarget


class HttpRequestShape(Strict):
    """Where each part of a query goes in the JSON request body."""

    query: str = Field(default="vector", description="Dotted path where the query vector (or "
                       "text) goes, like `query.embedding`.")
    k: str | None = Field(default="k", description="Dotted path where k goes; null to omit.")
    filter: str | None = Field(default=None, description="Dotted path where a filter object "
                               "goes; filters are refused when unset.")
    body: dict[str, Any] = Field(default_factory=dict, description="Fixed fields sent with "
                                 "every request.")


class HttpResponseShape(Strict):
    """Where the hits are in the JSON response, and where id and score are in a hit."""

    hits: str = Field(default="results", description="Dotted path of the list of hits.")
    id: str = Field(default="id", description="Dotted path of the id within a hit.")
    score: str = Field(default="score", description="Dotted path of the score within a hit.")


class HttpConfig(TargetConfig):
    """An HTTP search endpoint (see docs/adapters.md)."""

    kind: Literal["http"]
    url: str = Field(description="The app's search endpoint (live search).")
    exact_url: str | None = Field(default=None, description="An endpoint answering the true "
                                  "top-k in the same shapes; without it fidelity is not "
                                  "measurable.")
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, Secret] = Field(default_factory=dict, description="Request headers (auth); "
                                       "values are secrets, never logged.")
    send: Literal["vector", "text"] = Field(default="vector", description="Send the query "
                                            "vector, or the query text for apps that embed "
                                            "queries themselves.")
    request: HttpRequestShape = HttpRequestShape()
    response: HttpResponseShape = HttpResponseShape()
    dimension: int | None = Field(default=None, ge=1, description="The index's dimension, "
                                  "checked against query vectors when set.")
    metric: Metric = Field(default="cosine", description="What the endpoint's scores measure "
                           "(reported by describe).")

    @field_validator("url", "exact_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        scheme = urlsplit(value).scheme if value is not None else "http"
        if scheme not in ("http", "https"):  # quote the scheme only: a URL may hold credentials
            raise ValueError(f"scheme {scheme!r} is not http or https; use an http:// or "
                             "https:// URL")
        return value


class HttpTarget(VectorTarget):
    """Query an application's search endpoint."""

    config: HttpConfig
    supports_fetch = False

    def __init__(self, name: str, config: HttpConfig):
        super().__init__(name, config)
        self.supports_exact = config.exact_url is not None
        self.query_input = config.send
        self._secrets = [v.get_secret_value() for v in config.headers.values()]
        self._client: Any = None

    def _http(self) -> Any:
        import httpx

        if self._client is None:
            self._client = httpx.Client(
                timeout=self.config.timeout,
                headers={k: v.get_secret_value() for k, v in self.config.headers.items()})
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- protocol --------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
               texts: Sequence[str] | None = None) -> SearchResult:
        """POST one request per query to ``url``."""
        return self._run(self.config.url, vectors, k, filter, texts, exact=False)

    def exact_search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None, *,
                     texts: Sequence[str] | None = None,
                     budget: float | None = None) -> SearchResult:
        """POST to ``exact_url``; without one there is no ground truth to be had."""
        if self.config.exact_url is None:
            raise TargetError(self.name, "has no exact search: set exact_url to an endpoint "
                              "that answers with the true top-k")
        return self._run(self.config.exact_url, vectors, k, filter, texts, exact=True,
                         budget=budget)

    def _run(self, url: str, vectors: np.ndarray, k: int, filter: dict[str, Any] | None,
             texts: Sequence[str] | None, exact: bool,
             budget: float | None = None) -> SearchResult:
        k = check_k(self.name, k)
        if filter and self.config.request.filter is None:
            raise TargetError(self.name, "cannot filter: set request.filter to where the "
                              "endpoint expects the filter")
        inputs = self._inputs(vectors, texts)
        endpoint = _public(url)

        # the endpoint's index size is unknown: the budget counts queries (one "vector" each)
        clock, done = Budget(self.name, budget, total=1, queries=len(inputs)), [0]

        def one(query: Any) -> tuple[list[str], list[float]]:
            answer = self._post(url, endpoint, self._body(query, k, filter))
            done[0] += 1
            clock.check(1, queries=done[0])
            return answer

        ids, scores, latencies = timed_per_query(inputs, one)
        return SearchResult(ids, scores, latencies, exact=exact,
                            exact_mode="engine" if exact else None)

    def _inputs(self, vectors: np.ndarray, texts: Sequence[str] | None) -> Any:
        if self.config.send == "text":
            if texts is None:
                raise TargetError(self.name, "this endpoint takes query texts (send: text); "
                                  "pass texts=")
            return np.asarray(list(texts), dtype=object)
        arr = np.asarray(vectors, dtype=np.float32)
        dimension = self.config.dimension or (arr.shape[-1] if arr.ndim else 0)
        return self.check_queries(arr, dimension)

    def _body(self, query: Any, k: int, filter: dict[str, Any] | None) -> dict[str, Any]:
        shape = self.config.request
        body = copy.deepcopy(shape.body)
        value = query.tolist() if isinstance(query, np.ndarray) else str(query)
        _put(body, shape.query, value)
        if shape.k is not None:
            _put(body, shape.k, k)
        if filter and shape.filter is not None:
            _put(body, shape.filter, dict(filter))
        return body

    def _post(self, url: str, endpoint: str, body: dict[str, Any]) -> tuple[list[str],
                                                                           list[float]]:
        import httpx

        with engine_errors(self.name, endpoint, timeouts=(httpx.TimeoutException,),
                           unavailable=(httpx.TransportError,), timeout=self.config.timeout,
                           secrets=self._secrets):
            response = self._http().request(self.config.method, url, json=body)
        if response.status_code >= 500:
            raise TargetUnavailable(self.name, f"{endpoint} answered HTTP "
                                    f"{response.status_code}")
        if response.status_code >= 400:
            hint = "; check the auth headers" if response.status_code in (401, 403) else ""
            raise TargetError(self.name, f"{endpoint} answered HTTP {response.status_code}{hint}")
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TargetResponseError(self.name, f"{endpoint} did not answer JSON") from exc
        return self._hits(endpoint, payload)

    def _hits(self, endpoint: str, payload: Any) -> tuple[list[str], list[float]]:
        shape = self.config.response
        hits = self._get(endpoint, payload, shape.hits)
        if not isinstance(hits, list):
            raise TargetResponseError(self.name, f"{endpoint}: {shape.hits!r} in the response is "
                                      f"{_kind(hits)}, not a list of hits")
        ids, scores = [], []
        for n, hit in enumerate(hits):
            where = f"{shape.hits}.{n}"
            hit_id = self._get(endpoint, hit, shape.id, where)
            score = self._get(endpoint, hit, shape.score, where)
            if not isinstance(hit_id, str | int) or isinstance(hit_id, bool):
                at = f"{where}.{shape.id}"
                raise TargetResponseError(self.name, f"{endpoint}: {at!r} is {_kind(hit_id)}, "
                                          "not a string or integer id")
            if not isinstance(score, int | float) or isinstance(score, bool):
                at = f"{where}.{shape.score}"
                raise TargetResponseError(self.name, f"{endpoint}: {at!r} is {_kind(score)}, "
                                          "not a number")
            ids.append(str(hit_id))
            scores.append(float(score))
        return ids, scores

    def _get(self, endpoint: str, data: Any, path: str, prefix: str = "") -> Any:
        walked = prefix
        for part in path.split("."):
            walked = f"{walked}.{part}" if walked else part
            if isinstance(data, dict) and part in data:
                data = data[part]
            elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
                data = data[int(part)]
            else:
                raise TargetResponseError(self.name, f"{endpoint}: the response has no "
                                          f"{walked!r} (expected by response mapping {path!r})")
        return data

    def fetch(self, ids: list[str]) -> Vectors:
        raise self._no_vectors("fetch")

    def sample(self, n: int, seed: int) -> Vectors:
        raise self._no_vectors("sample")

    def count(self) -> int:
        raise self._no_vectors("count")

    def _no_vectors(self, what: str) -> TargetError:
        return TargetError(self.name, f"an HTTP search endpoint cannot {what} stored vectors; "
                           "point a drift or canary probe at the store behind it instead")

    def describe(self) -> Description:
        """The endpoint's configuration; count is unknown (0) and dimension 0 if not set."""
        cfg = self.config
        params = {"url": _public(cfg.url),
                  "exact_url": _public(cfg.exact_url) if cfg.exact_url else None,
                  "send": cfg.send, "request": cfg.request.model_dump(),
                  "response": cfg.response.model_dump()}
        return Description("http", "", cfg.dimension or 0, cfg.metric, 0, "str", params,
                           {"count": "unknown"})


def _public(url: str) -> str:
    """The URL without credentials or query string (either may carry secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _put(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
