"""Query traffic into the reservoir: a tailed JSONL file and a localhost HTTP endpoint.

JSONL: the RAG app appends one JSON object per query (``{"query": "...", "vector": [...],
"id": "..."}``; text, vector or both). The tail remembers the file's inode and offset in
SQL; a rotated file (new inode at the path) is read to its end before the new one is
opened, a truncated one (size below the offset) is read again from the start, and a line
without its newline yet is left for the next poll. A corrupt line is skipped, counted and
logged once per file position.

HTTP: ``POST /ingest/<probe>`` with ``{"queries": [{"query": ..., "vector": [...]}, ...]}``
(or ``{"texts": [...]}`` / ``{"vectors": [[...]]}``). A vector is a list of numbers or,
about four times smaller, a base64 string of little-endian float32 (in JSONL lines too).
Bearer-token auth when the probe
configures a token; requests larger than ``max_request_bytes`` get 413, a bad token 401,
a missing Content-Length 411, an invalid one, malformed or too deeply nested JSON, bad
items or vectors of another dimension than the probe's 400; nothing of a refused request
is stored.

Dimensions: a vector must have the probe's dimension: its embedder's once the model is
loaded, else that of the vectors in the current window, else the reference's. One batch of
another dimension would otherwise fail every later run of the probe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from ragmon.monitor.errors import DriftError
from ragmon.monitor.store import Store
from ragmon.monitor.store.claims import Claims
from ragmon.probes.drift.config import DriftConfig
from ragmon.probes.drift.state import Item, add_items, tail_state, window_dimensions
from ragmon.probes.references import ReferenceSample

if TYPE_CHECKING:
    from ragmon.monitor.context import ProbeContext
    from ragmon.monitor.daemon import Daemon

log = logging.getLogger("ragmon.drift.ingest")
READ_CHUNK = 1 << 20
HEAD_BYTES = 256
DRAIN_LIMIT = 64 << 20
_TAIL_LOCKS: dict[str, threading.Lock] = {}
_TAIL_LOCKS_GUARD = threading.Lock()
# Checking a batch's dimension and storing it is one step per probe (HTTP and the tail).
_ADD_LOCKS: dict[str, threading.Lock] = {}


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
        vector = (decode_vector(raw, f"{where}: {q.vector_field!r}") if isinstance(raw, str)
                  else _number_vector(raw, where, q.vector_field))
        if not np.isfinite(vector).all():
            raise DriftError(f"{where}: {q.vector_field!r} contains NaN or Inf")
    item_id = obj.get(q.id_field)
    return Item(text, vector, None if item_id is None else str(item_id)[:400])


def _number_vector(raw: Any, where: str, field: str) -> np.ndarray:
    try:
        vector = np.asarray(raw, dtype=np.float32)
    except (TypeError, ValueError):
        raise DriftError(f"{where}: {field!r} must be a list of numbers or a base64 string "
                         "of little-endian float32") from None
    if vector.ndim != 1 or vector.size == 0:
        raise DriftError(f"{where}: {field!r} must be a flat list of numbers")
    return vector


def decode_vector(text: str, where: str) -> np.ndarray:
    """A vector sent compactly: base64 (standard alphabet, padded) of little-endian float32,
    4 bytes per dimension: about a quarter of the size of the same vector in JSON numbers."""
    if not text:
        raise DriftError(f"{where} is an empty string; send base64 of little-endian float32")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DriftError(f"{where} is not valid base64 ({exc}); send base64 (standard "
                         "alphabet, padded) of little-endian float32") from None
    if len(data) % 4:
        raise DriftError(f"{where} decodes to {len(data)} bytes, not a whole number of "
                         "little-endian float32 values (4 bytes each)")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def check_dimensions(items: list[Item], where: str) -> None:
    dims = {it.vector.size for it in items if it.vector is not None}
    if len(dims) > 1:
        raise DriftError(f"{where}: vectors of mixed dimensions {sorted(dims)}")


def _add_lock(probe: str) -> threading.Lock:
    with _TAIL_LOCKS_GUARD:
        return _ADD_LOCKS.setdefault(probe, threading.Lock())


def reference_dimension(store: Store, probe: str, source: str) -> int | None:
    """The dimension of the probe's newest stored reference, if any."""
    with store.session() as s:
        dim = s.scalars(select(ReferenceSample.dimension).where(
            ReferenceSample.probe == probe, ReferenceSample.instance == store.instance,
            ReferenceSample.source == source,
        ).order_by(ReferenceSample.id.desc()).limit(1)).first()
    return None if dim is None else int(dim)


def expected_dimension(store: Store, probe: str, cfg: DriftConfig,
                       embedder_dimension: int | None = None) -> tuple[int, str] | None:
    """The dimension the probe's vectors must have, and whose it is: the embedder's (when
    known), else the current window's (its majority), else the reference's."""
    if embedder_dimension is not None:
        return embedder_dimension, "its embedder's"
    counts = window_dimensions(store, probe)
    if counts:
        return max(counts, key=lambda d: counts[d]), "that of its current window"
    dim = reference_dimension(store, probe, cfg.source)
    return (dim, "its reference's") if dim is not None else None


def dimension_error(items: list[Item], probe: str,
                    expected: tuple[int, str] | None) -> str | None:
    """Why ``items`` (of one dimension) cannot join the probe's window, or None."""
    if expected is None:
        return None
    dim, whose = expected
    wrong = next((it.vector.size for it in items
                  if it.vector is not None and it.vector.size != dim), None)
    if wrong is None:
        return None
    return (f"vectors of dimension {wrong} do not fit drift probe {probe!r}, which takes "
            f"dimension {dim} ({whose}); send vectors of the model the probe uses")


# --- JSONL tail ------------------------------------------------------------------------------
def tail_lease(cfg: DriftConfig) -> float:
    """How long one replica's hold on tailing a file lasts without a poll renewing it."""
    return max(2.0, 5 * float(cfg.queries.poll))


def poll_jsonl(store: Store, probe: str, cfg: DriftConfig,
               logged: set[tuple[int, int]] | None = None, claims: Claims | None = None) -> int:
    """Read new complete lines of the probe's JSONL file into the reservoir.

    Replicas sharing a store (and the file, on a shared volume) take turns: with
    ``claims``, only the replica holding the file's lease reads it (renewed at each poll;
    another replica takes it over once it runs out). Whoever reads, lines are added only
    from the stored offset they were read at, so no line is counted twice; the offset is
    stored with the lines, so none is lost when a reader dies."""
    if cfg.queries.jsonl is None:
        return 0
    if claims is not None and not claims.acquire(f"drift-tail:{probe}", tail_lease(cfg)):
        return 0  # another replica tails this file
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
    with _add_lock(probe):
        items, skipped = _fit_dimension(store, probe, cfg, items, str(path))
        new_tail = {"path": str(path), "inode": st.st_ino, "offset": offset,
                    "bad_lines": bad + skipped, "head": _head(str(path), offset)}
        if not add_items(store, probe, items, cfg.window_size, tail=new_tail, seed=cfg.seed,
                         read_from=tail) and items:
            return 0  # another replica read these lines first and counted them
    return len(items)


def _fit_dimension(store: Store, probe: str, cfg: DriftConfig, items: list[Item],
                   path: str) -> tuple[list[Item], int]:
    """The lines of ``items`` whose vector has the probe's dimension (with none known, the
    most common one), and how many were skipped (logged; counted as bad lines)."""
    dims = Counter(it.vector.size for it in items if it.vector is not None)
    if not dims:
        return items, 0
    expected = expected_dimension(store, probe, cfg) or (dims.most_common(1)[0][0],
                                                         "most of the lines read")
    if set(dims) == {expected[0]}:
        return items, 0
    kept = [it for it in items if it.vector is None or it.vector.size == expected[0]]
    skipped = len(items) - len(kept)
    log.warning("skipping %d line(s) of %s: %s", skipped, path,
                dimension_error(items, probe, expected))
    return kept, skipped


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
                except (ValueError, RecursionError, DriftError) as exc:
                    bad += 1
                    if (inode, position) not in logged:
                        logged.add((inode, position))
                        reason = (exc if isinstance(exc, DriftError) else
                                  "nested too deeply" if isinstance(exc, RecursionError) else
                                  "not valid JSON")
                        log.warning("skipping a corrupt line at byte %d of %s: %s",
                                    position, path, reason)
            fh.seek(offset)
    return items, offset, bad


# --- HTTP ------------------------------------------------------------------------------------
class IngestApp:
    """WSGI app for ``/ingest/<probe>``; ``probes`` maps names to their configs. With a
    ``context``, vectors are checked against the probe's embedder once it is loaded."""

    def __init__(self, store: Store, probes: dict[str, DriftConfig],
                 context: ProbeContext | None = None):
        self.store = store
        self.probes = probes
        self.context = context

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
        declared = str(environ.get("CONTENT_LENGTH") or "").strip()
        if not declared:
            return "411 Length Required", {"error": "send the body with a Content-Length"}
        if not (declared.isascii() and declared.isdigit()):
            # A negative length would read to the end of the stream, past every limit.
            return "400 Bad Request", {"error": f"invalid Content-Length {declared[:40]!r}: "
                                                "not a non-negative integer"}
        length = int(declared)
        if length > limit:
            _discard(environ["wsgi.input"], length)
            return "413 Content Too Large", {"error": f"request of {length} bytes exceeds "
                                                      f"max_request_bytes {limit}"}
        raw = environ["wsgi.input"].read(length) if length else b""
        if len(raw) != length:
            return "400 Bad Request", {"error": f"body of {len(raw)} bytes, Content-Length "
                                                f"{length}"}
        try:
            items = self._items(json.loads(raw), cfg)
        except RecursionError:
            return "400 Bad Request", {"error": "body is nested too deeply to be a batch"}
        except ValueError:
            return "400 Bad Request", {"error": "body is not valid JSON"}
        except DriftError as exc:
            return "400 Bad Request", {"error": str(exc)}
        with _add_lock(name):
            if any(it.vector is not None for it in items):
                want = expected_dimension(self.store, name, cfg, self._embedder_dimension(cfg))
                error = dimension_error(items, name, want)
                if error is not None:
                    return "400 Bad Request", {"error": error}
            add_items(self.store, name, items, cfg.window_size, seed=cfg.seed)
        return "200 OK", {"accepted": len(items)}

    def _embedder_dimension(self, cfg: DriftConfig) -> int | None:
        """The probe's embedder's dimension when its model is loaded (never loaded here)."""
        ctx = self.context
        if ctx is None:
            return None
        name = cfg.embedder
        if name is None and cfg.target is not None and cfg.target in ctx.config.targets:
            name = ctx.config.targets[cfg.target].embedder
        if name is None or name not in ctx.loaded_embedders():
            return None
        try:
            return int(ctx.embedder(name).dimension)
        except Exception:  # a broken embedder is for the probe's run to report
            return None

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
    daemon.context.http_routes["/ingest"] = IngestApp(store, probes, daemon.context)
    for name, cfg in probes.items():
        if cfg.queries.jsonl is None:
            continue
        logged: set[tuple[int, int]] = set()

        def job(name: str = name, cfg: DriftConfig = cfg,
                logged: set[tuple[int, int]] = logged) -> None:
            try:
                poll_jsonl(store, name, cfg, logged, daemon.context.claims)
            except Exception:  # the tail retries at the next poll; the daemon keeps running
                log.exception("reading the query log of drift probe %r failed", name)

        daemon.scheduler.add_job(job, "interval", seconds=cfg.queries.poll,
                                 id=f"drift-tail:{name}", replace_existing=True)
