"""Config reload without a restart: on SIGHUP, or when the config file, a secret file or a
golden set file it names changes.

The watcher polls every ``reload.poll`` seconds the path of each watched file, the file its
path resolves to, its mtime and size, and (when one of those moved) a SHA-256 of its
content. A Kubernetes ConfigMap volume updates by swapping a ``..data`` symlink: the path
stays, its target changes, and so does the content hash; a swap that leaves the content as
it was (another key of the ConfigMap changed) is no reload.

A reload validates first, exactly as start-up and ``ragmon check-config`` do (the loader,
then the features' file checks; a file that is not there yet stays a warning). A config
with errors is refused: each error is logged on one line with its key path, counted in
``ragmon_config_reload_failures_total``, and the running config stays. A good one is
applied by :func:`ragmon.monitor.reload_apply.apply_config`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragmon.monitor.config import RootConfig, load_config, parse_yaml
from ragmon.monitor.errors import ConfigError
from ragmon.monitor.metrics import reload_metrics
from ragmon.monitor.targets import VectorTarget

if TYPE_CHECKING:
    from ragmon.monitor.daemon import Daemon

log = logging.getLogger("ragmon.reload")
#: Seconds a changed file must stay unchanged before it is reloaded.
SETTLE = 0.5


@dataclass(frozen=True)
class FileStamp:
    """What is compared between polls: a changed ``digest`` means a reload."""

    path: str
    target: str
    mtime_ns: int
    size: int
    digest: str


def secret_files(config: RootConfig) -> list[Path]:
    """The files the config reads secrets from (``{file: PATH}``), so that a rotated Secret
    volume is a reload too."""
    if not config.source:
        return []
    source = Path(config.source)
    try:
        raw: Any = parse_yaml(source.read_text(encoding="utf-8"), str(source))
    except (OSError, UnicodeDecodeError, ConfigError):
        return []
    found: list[Path] = []
    stack = [raw]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if len(node) == 1 and isinstance(node.get("file"), str):
                path = Path(os.path.expanduser(node["file"]))
                found.append(path if path.is_absolute()
                             else Path(os.path.abspath(source.parent / path)))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(set(found))


def watched_files(config: RootConfig) -> list[Path]:
    """The config file, the secret files it names and its golden set files (each file of a
    BEIR folder)."""
    paths = [Path(config.source)] if config.source else []
    paths.extend(secret_files(config))
    for golden in config.golden_sets.values():
        for path in (golden.path, golden.queries):
            if path is None:
                continue
            if path.is_dir():
                paths.extend(sorted(p for p in path.rglob("*") if p.is_file()))
            else:
                paths.append(path)
    return paths


class _Stamper:
    """Stamps files, hashing one again only when its target, mtime or size moved."""

    def __init__(self) -> None:
        self._known: dict[str, FileStamp] = {}

    def stamp(self, path: Path) -> FileStamp:
        key = str(path)
        try:
            target = os.path.realpath(path)
            st = os.stat(target)
        except OSError:
            return FileStamp(key, "", 0, -1, "missing")
        known = self._known.get(key)
        if known and (known.target, known.mtime_ns, known.size) == (
                target, st.st_mtime_ns, st.st_size):
            return known
        digest = hashlib.sha256()
        try:
            with open(target, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            return FileStamp(key, target, 0, -1, "unreadable")
        stamp = FileStamp(key, target, st.st_mtime_ns, st.st_size, digest.hexdigest())
        self._known[key] = stamp
        return stamp

    def digests(self, paths: list[Path]) -> tuple[tuple[str, str], ...]:
        return tuple((str(p), self.stamp(p).digest) for p in paths)


class ConfigReloader:
    """Reloads a daemon's config on request (SIGHUP) and when its watched files change.

    ``request()`` only sets an event, so a signal handler may call it; the work happens on
    the reloader's own thread, one reload at a time, never during shutdown."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.metrics = reload_metrics(daemon.registry)
        self._stamper = _Stamper()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._requested = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Targets a reload replaced, with the probe threads that may still use them.
        self._retired: list[tuple[set[threading.Thread], list[VectorTarget]]] = []
        self._seen = self._stamper.digests(watched_files(daemon.config))
        self._applied(daemon.config)

    @property
    def poll(self) -> float:
        return float(self.daemon.config.reload.poll)

    def request(self) -> None:
        """Ask for a reload now (safe to call from a signal handler)."""
        self._requested = True
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ragmon-reload", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop watching; a reload being applied finishes first (up to ``timeout``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._lock.acquire(timeout=timeout):
            self._close_retired()
            self._lock.release()

    def _close_retired(self) -> None:
        """Close replaced targets whose runs have all ended (never under a running search)."""
        waiting = []
        for threads, targets in self._retired:
            if any(t.is_alive() for t in threads):
                waiting.append((threads, targets))
                continue
            for target in targets:
                try:
                    target.close()
                except Exception:
                    log.exception("closing a replaced target failed")
        self._retired = waiting

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            requested, self._requested = self._requested, False
            try:
                self.check(requested)
                with self._lock:
                    self._close_retired()
            except Exception:  # the watcher must outlive any bug in one reload
                log.exception("config reload failed")

    def check(self, requested: bool = False) -> bool | None:
        """Reload when asked to or when a watched file changed; None when nothing happened,
        else whether the new config was applied."""
        watch = self.daemon.config.reload.watch
        seen = self._stamper.digests(watched_files(self.daemon.config)) \
            if watch or requested else self._seen
        if not requested and seen == self._seen:
            return None
        if not requested:
            # A file written in place (not swapped like a ConfigMap) may be caught half
            # written: reload once it reads the same twice in a row.
            time.sleep(min(SETTLE, self.poll))
            if self._stamper.digests(watched_files(self.daemon.config)) != seen:
                return None
        changed = [p for (p, d), (q, e) in zip(seen, self._seen, strict=False) if d != e or p != q]
        self._seen = seen  # a refused config is not retried until a file changes again
        reason = "SIGHUP" if requested else "changed: " + ", ".join(changed or ["watched files"])
        return self.reload(reason)

    def reload(self, reason: str = "requested") -> bool:
        """Validate the config file again and apply it; False (logged, counted) if refused."""
        from ragmon.monitor.reload_apply import apply_config

        with self._lock:
            if self._stop.is_set() or self.daemon.stop_event.is_set():
                return False
            self.metrics["reloads"].inc()
            log.info("config reload (%s)", reason)
            try:
                new = self._load()
            except ConfigError as exc:
                for issue in exc.issues:
                    log.error("config reload refused: %s", issue)
                log.error("config reload refused: %d error(s); the running config stays",
                          len(exc.issues))
                self.metrics["failures"].inc()
                self.metrics["successful"].set(0)
                return False
            try:
                self._retired.append(apply_config(self.daemon, new))
            except Exception:  # a bug while applying: say so, count it, keep the daemon up
                log.exception("config reload: applying the new config failed")
                self.metrics["failures"].inc()
                self.metrics["successful"].set(0)
                return False
            self._seen = self._stamper.digests(watched_files(self.daemon.config))
            self._applied(self.daemon.config)
            log.info("config reloaded: %d probes", len(self.daemon.config.probes))
            return True

    def _load(self) -> RootConfig:
        """The same path as start-up and ``check-config``: load, then the file checks."""
        old = self.daemon.config
        new = load_config(old.source, old.plugins)
        issues = [i for check in old.plugins.file_checks for i in check(new) if not i.warning]
        if issues:
            raise ConfigError(issues)
        return new

    def _applied(self, config: RootConfig) -> None:
        self.metrics["successful"].set(1)
        self.metrics["last_success"].set(time.time())
        digest = hashlib.sha256()
        for _, file_digest in self._stamper.digests(watched_files(config)):
            digest.update(file_digest.encode())
        self.metrics["info"].clear()
        self.metrics["info"].labels(digest.hexdigest()[:16]).set(1)
