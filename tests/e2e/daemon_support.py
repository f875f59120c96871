"""The demo's deployment served by a real `ragmon run` subprocess, with real receivers: an
HTTP webhook receiver and an aiosmtpd mailbox (plain SMTP on 127.0.0.1), and query traffic
appended to the tailed JSONL file by a thread, as an app would.

The corpus is the demo's whole index; the golden set is a subset of its questions and the
intervals are seconds, so a scenario is seen within a few runs."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ragmon.monitor.app import default_plugins
from ragmon.monitor.demo import traffic
from ragmon.monitor.demo.run import write_config
from ragmon.monitor.http import http_get
from ragmon.monitor.store import Store

RAGMON = [sys.executable, "-m", "ragmon.monitor"]
GOLDEN_QUESTIONS = 60


class Traffic:
    """Appends questions to the tailed file a few times a second; ``shift`` changes the mix."""

    def __init__(self, data: Path, per_second: int = 40):
        self.data, self.per_second = data, per_second
        self.shift = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        golden, path = self.data / "golden.jsonl", self.data / "traffic.jsonl"
        everyday = traffic.healthy_mix(golden)
        moved = traffic.shifted(everyday, "ml-training", 0.7)
        seed = 0
        while not self._stop.wait(0.25):
            seed += 1
            texts = traffic.generate(self.per_second // 4, moved if self.shift else everyday,
                                     seed, golden)
            traffic.append_jsonl(path, texts)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def e2e_config(data: Path, port: int, webhook: str, smtp_port: int) -> Path:
    """The demo config with short intervals, a golden subset and two real sinks."""
    path = write_config(data, port, io.StringIO(), default_plugins())
    raw = yaml.safe_load(path.read_text())
    golden = (data / "golden.jsonl").read_text().splitlines()[:GOLDEN_QUESTIONS]
    (data / "golden.jsonl").write_text("\n".join(golden) + "\n")
    fast = {"jitter": "0s"}
    # Timeouts are generous: the first runs after a start load the model, which takes
    # a minute on a busy machine.
    raw["probes"]["canary"].update(every="3s", timeout="180s", **fast)
    raw["probes"]["docs-recall"].update(every="2s", timeout="180s", **fast)
    raw["probes"]["query-drift"].update(
        every="2s", window_size=60, min_samples=30, reference={"mode": "pinned", "size": 120},
        alarm={"false_alarms": 1, "per": "1h"}, timeout="180s", **fast)
    raw["logging"] = {"level": "info"}
    raw["alerts"].update(
        repeat_interval="24h",
        delivery={"backoff": "100ms", "max_backoff": "1s", "timeout": "5s", "poll": "200ms"},
        sinks={"hook": {"kind": "webhook", "url": webhook},
               "mail": {"kind": "email", "host": "127.0.0.1", "port": smtp_port,
                        "security": "none", "from": "ragmon@example.org",
                        "to": ["kb-owners@example.org"], "timeout": "5s"}})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class Daemon:
    """`ragmon run -c CONFIG` as a subprocess; its log is kept in a file."""

    def __init__(self, config: Path, port: int):
        self.config, self.port = config, port
        self.base = f"http://127.0.0.1:{port}"
        self.log = config.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*RAGMON, "run", "-c", str(self.config)], env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: http_get(self.base + "/readyz", timeout=2)[0] == 200, 120,
                   "the daemon did not become ready", self)

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_until(check: Callable[[], Any], timeout: float, what: str,
               daemon: Daemon | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(what + ("\n" + daemon.tail() if daemon else ""))
        time.sleep(0.2)


def newest_runs(store: Store, probe: str, after: int) -> list[Any]:
    return [r for r in store.runs(probe=probe, limit=50) if r.id > after]


def last_id(store: Store, probe: str) -> int:
    runs = store.runs(probe=probe, limit=1)
    return runs[0].id if runs else 0


def notifications(receiver: Any, rule: str) -> list[str]:
    """The statuses (firing, resolved) of the webhook notifications about ``rule``."""
    return [r.json()["status"] for r in receiver.ok_requests
            if r.json()["alert"]["name"] == rule]


def mails(mailbox: Any, rule: str) -> list[str]:
    """The subjects of the mails about ``rule``."""
    return [str(m["Subject"]) for _, m in mailbox.messages if rule in str(m["Subject"])]
