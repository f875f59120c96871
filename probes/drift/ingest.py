"""Query traffic into the reservoir: a tailed JSONL file and a localhost HTTP endpoint.

JSONL: the RAG app appends one JSON object per query (``{"query": "...", "vector": [...],
"id": "..."}``; text, vector or both). The tail remembers the file's inode and offset in
SQL; a rotated file (new inode at the path) is read to its end before the new one is
opened, a truncated one (size below the offset) is read again from the start, and a line
without its newline yet is left for the next poll. A corrupt line is skipped, counted and
logged once per file position.

HTTP: ``POST /ingest/<probe>`` with ``{"queries": [{"query": ..., "vector": [...]}, ...]}``
(or ``{"texts": [...]}`` / ``{"vectors": [[...]]}``). Bearer-token auth when the probe
configures a token; requests larger than ``max_request_bytes`` get 413, a bad token 401,
malformed JSON or items 400; nothing of a refused request is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ragmon.monitor.errors import DriftError
from ragmon.monitor.store import Store
from ragmon.probes.drift.config import DriftConfig
from ragmon.probes.drift.state import Item, add_items, tail_state

if TYPE_CHECKING:
    from ragmon.monitor.daemon import Daemon

log = logging.getLogger("ragmon.drift.ingest")
READ_CHUNK = 1 << 20
HEAD_BYTES = 256
DRAIN_LIMIT = 64 << 20
_TAIL_LOCKS: dict[str, threading.Lock] = {}
_TAIL_LOCKS_GUARD = threading.Lock()


def parse_item(obj: Any, cfg: DriftConfig, where: str) -> Item:
    """One query object -> Item; DriftError says what is wrong with it."""
    q = cfg.queries
    if isinstance(obj, str):
        obj = {q.text_field: obj}
    if not isinstance(obj, dict):
        raise DriftError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    text = obj.get(q.text_field)
    raw = obj.get(q.vector_field)
    if text is None and raw is None:
        raise DriftError(f"{where}: needs {q.text_field!r} (text) or {q.vector_field!r}")
    if text is not None and not isinstance(text, str):
        raise DriftError(f"{where}: {q.text_field!r} must be a string")
    vector = None
    if raw is not None:
        try:
            vector = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError):
            raise DriftError(f"{where}: {q.vector_field!r} must be a list of numbers") from None
        if vector.ndim != 1 or vector.size == 0:
            raise DriftError(f"{where}: {q.vector_field!r} must be a flat list of numbers")
        if not np.isfinite(vector).all():
            raise DriftError(f"{where}: {q.vector_field!r} contains NaN or Inf")
    item_id = obj.get(q.id_field)
    return Item(text, vector, None if item_id is None else str(item_id)[:400])


def check_dimensions(items: list[Item], where: str) -> None:
    dims = {it.vector.size for it in items if it.vector is not None}
    if len(dims) > 1:
        raise DriftError(f"{where}: vectors of mixed dimensions {sorted(dims)}")


# --- JSONL tail ------------------------------------------------------------------------------
def poll_jsonl(store: Store, probe: str, cfg: DriftConfig,
               logged: set[tuple[int, int]] | None = None) -> int:
    """Read new complete lines of the probe's JSONL file into the reservoir."""
    if cfg.queries.jsonl is None:
        return 0
    # The daemon's tail job and a probe run may poll at once: one reader per probe.
    with _TAIL_LOCKS_GUARD:
        lock = _TAIL_LOCKS.setdefault(probe, threading.Lock())
    with lock:
        return _poll(store, probe, cfg, logged)


def _poll(store: Store, probe: str, cfg: DriftConfig,
          logged: set[tuple[int, int]] | None) -> int:
    path = cfg.queries.jsonl
    assert path is not None
    tail = tail_state(store, probe)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 0  # not written yet, or between rotation steps
    inode, offset = tail.get("inode"), int(tail.get("offset", 0))
    items: list[Item] = []
    bad = int(tail.get("bad_lines", 0))
    logged = logged if logged is not None else set()
    if inode is not None and inode != st.st_ino:
        # Rotated: finish the old file if it is still reachable under a rotated name.
        old = _find_rotated(str(path), inode)
        if old is not None:
            got, _, bad = _read_lines(old, inode, offset, cfg, bad, logged)
            items += got
        offset = 0
    elif offset and (st.st_size < offset or _head(str(path), offset) != tail.get("head")):
        # Truncated in place (copytruncate), possibly already refilled past the offset:
        # the first bytes no longer match what was read.
        log.warning("%s was truncated or replaced; reading it from the start", path)
        offset = 0
    got, offset, bad = _read_lines(str(path), st.st_ino, offset, cfg, bad, logged)
    items += got
    new_tail = {"path": str(path), "inode": st.st_ino, "offset": offset, "bad_lines": bad,
                "head": _head(str(path), offset)}
    add_items(store, probe, items, cfg.window_size, tail=new_tail, seed=cfg.seed)
    return len(items)


def _head(path: str, offset: int) -> str:
    """Digest of the file's first (up to 256) bytes already read: identifies the content."""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(min(offset, HEAD_BYTES))).hexdigest()[:16]


def _find_rotated(path: str, inode: int) -> str | None:
    folder = os.path.dirname(path) or "."
    base = os.path.basename(path)
    for name in sorted(os.listdir(folder)):
        if name.startswith(base) and name != base:
            candidate = os.path.join(folder, name)
            try:
                if os.stat(candidate).st_ino == inode:
                    return candidate
            except OSError:
                continue
    return None


def _read_lines(path: str, inode: int, offset: int, cfg: DriftConfig, bad: int,
                logged: set[tuple[int, int]]) -> tuple[list[Item], int, int]:
    items: list[Item] = []
    with open(path, "rb") as fh:
        fh.seek(offset)
        while True:
            chunk = fh.read(READ_CHUNK)
            if not chunk:
                break
            end = chunk.rfind(b"\n")
            if end < 0:
                if len(chunk) == READ_CHUNK:  # one line longer than a chunk: skip it
                    offset += len(chunk)
                    bad += 1
                    continue
                break
            for line in chunk[: end + 1].splitlines(keepends=True):
                position = offset
                offset += len(line)
                text = line.strip()
                if not text:
                    continue
                try:
                    items.append(parse_item(json.loads(text), cfg, f"{path}:{position}"))
                except (ValueError, DriftError) as exc:
                    bad += 1
                    if (inode, position) not in logged:
                        logged.add((inode, position))
                        reason = exc if isinstance(exc, DriftError) else "not valid JSON"
                        log.warning("skipping a corrupt line at byte %d of %s: %s",
                                    position, path, reason)
            fh.seek(offset)
    return items, offset, bad


# --- HTTP ------------------------------------------------------------------------------------
class IngestApp:
    """WSGI app for ``/ingest/<probe>``; ``probes`` maps names to their configs."""

    def __init__(self, store: Store, probes: dict[str, DriftConfig]):
        self.store = store
        self.probes = probes

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        status, body = self.handle(environ)
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"),
                                 ("Content-Length", str(len(data)))])
        return [data]

    def handle(self, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = environ.get("PATH_INFO", "").removeprefix("/ingest").strip("/")
        cfg = self.probes.get(name)
        if cfg is None or not cfg.queries.http:
            valid = ", ".join(sorted(n for n, c in self.probes.items() if c.queries.http))
            return "404 Not Found", {"error": f"no ingesting drift probe {name!r}; "
                                              f"valid: {valid or 'none'}"}
        if environ.get("REQUEST_METHOD") != "POST":
            return "405 Method Not Allowed", {"error": "use POST with a JSON body"}
        if cfg.queries.token is not None:
            expected = f"Bearer {cfg.queries.token.get_secret_value()}".encode()
            given = environ.get("HTTP_AUTHORIZATION", "").encode()
            if not hmac.compare_digest(given, expected):
                return "401 Unauthorized", {"error": "missing or wrong bearer token"}
        limit = cfg.queries.max_request_bytes
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return "400 Bad Request", {"error": "invalid Content-Length"}
        if length > limit:
            _discard(environ["wsgi.input"], length)
            return "413 Content Too Large", {"error": f"request of {length} bytes exceeds "
                                                      f"max_request_bytes {limit}"}
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            items = self._items(json.loads(raw), cfg)
        except ValueError:
            return "400 Bad Request", {"error": "body is not valid JSON"}
        except DriftError as exc:
            return "400 Bad Request", {"error": str(exc)}
        add_items(self.store, name, items, cfg.window_size, seed=cfg.seed)
        return "200 OK", {"accepted": len(items)}

    @staticmethod
    def _items(payload: Any, cfg: DriftConfig) -> list[Item]:
        if isinstance(payload, dict) and "queries" in payload:
            raw = payload["queries"]
        elif isinstance(payload, dict) and "texts" in payload:
            raw = payload["texts"]
        elif isinstance(payload, dict) and "vectors" in payload:
            raw = [{cfg.queries.vector_field: v} for v in payload["vectors"]]
        else:
            raise DriftError("expected an object with 'queries', 'texts' or 'vectors'")
        if not isinstance(raw, list):
            raise DriftError("the batch must be a JSON list")
        items = [parse_item(obj, cfg, f"item {i}") for i, obj in enumerate(raw)]
        check_dimensions(items, "batch")
        return items


def _discard(stream: Any, length: int) -> None:
    """Read and drop a refused body in small chunks (never held), so that a client still
    sending it gets the 413 instead of a reset connection; past DRAIN_LIMIT the server
    stops reading and the connection is closed."""
    left = min(length, DRAIN_LIMIT)
    while left > 0:
        chunk = stream.read(min(left, 1 << 16))
        if not chunk:
            break
        left -= len(chunk)


def drift_probes(config: Any) -> dict[str, DriftConfig]:
    return {n: c for n, c in config.probes.items()
            if getattr(c, "kind", None) == "drift" and c.source == "queries"}


def install(daemon: Daemon) -> None:
    """Mount ``/ingest`` and schedule the JSONL tails of the daemon's query-drift probes."""
    probes = drift_probes(daemon.config)
    if not probes:
        return
    # An extension is installed once the daemon has opened its store and built its scheduler.
    store = daemon.store
    assert store is not None and daemon.scheduler is not None
    daemon.context.http_routes["/ingest"] = IngestApp(store, probes)
    for name, cfg in probes.items():
        if cfg.queries.jsonl is None:
            continue
        logged: set[tuple[int, int]] = set()

        def job(name: str = name, cfg: DriftConfig = cfg,
                logged: set[tuple[int, int]] = logged) -> None:
            try:
                poll_jsonl(store, name, cfg, logged)
            except Exception:  # the tail retries at the next poll; the daemon keeps running
                log.exception("reading the query log of drift probe %r failed", name)

        daemon.scheduler.add_job(job, "interval", seconds=cfg.queries.poll,
                                 id=f"drift-tail:{name}", replace_existing=True)
