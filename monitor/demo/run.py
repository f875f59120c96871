"""``ragmon demo``: ragmon's main job on its embedded default, with nothing to configure.

It writes a config into a data folder (SQLite store, the bundled MiniLM model, every probe
kind this install has), prepares what those probes watch, runs each probe once with its
readable report, then starts the daemon itself, reads its /metrics, /healthz and /readyz
like Prometheus and a kubelet would, and stops it the way Kubernetes does (SIGTERM path).
With ``--serve`` the daemon keeps running until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ragmon.monitor.demo import scenario
from ragmon.monitor.http import free_port, http_get

if TYPE_CHECKING:
    from ragmon.monitor.plugins import Plugins


def write_config(data_dir: Path, port: int, out: Any, plugins: Plugins) -> Path:
    """The demo config: what an operator would write, generated so it matches this install."""
    config: dict[str, Any] = {
        "store": {"url": "sqlite:///ragmon.db"},
        "server": {"listen": f"127.0.0.1:{port}", "shutdown_grace": "10s"},
        "logging": {"level": "warning"},
        "embedders": {"minilm": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}},
        "probes": {"canary": {"kind": "canary", "embedder": "minilm", "every": "1m",
                              "timeout": "2m"}},
    }
    scenario.extend_config(config, data_dir, plugins)
    scenario.prepare(config, data_dir, out)
    path = data_dir / "ragmon.yaml"
    path.write_text("# Written by `ragmon demo`; edit and run `ragmon run -c " + str(path)
                    + "`.\n" + yaml.safe_dump(config, sort_keys=False))
    return path


HEADLINE = ("ragmon_probe_success", "ragmon_canary_cosine_min", "ragmon_canary_changed",
            "ragmon_recall_ratio", "ragmon_ndcg_ratio", "ragmon_index_fidelity_ratio",
            "ragmon_recall_verdict", "ragmon_drift_alarm", "ragmon_alerts_firing")


def _headline(sample: str) -> bool:
    """The samples worth showing a person: outcomes, not bookkeeping (k=10 only)."""
    name = sample.split("{")[0].split(" ")[0]
    if name not in HEADLINE or ('k="' in sample and 'k="10"' not in sample):
        return False
    return not (name == "ragmon_recall_verdict" and sample.endswith(" 0.0"))


def run_demo(data_dir: str | Path, plugins: Plugins, serve: bool = False,
             out: Any = None) -> int:
    from prometheus_client import CollectorRegistry

    from ragmon.monitor.config import load_config
    from ragmon.monitor.context import ProbeContext
    from ragmon.monitor.daemon import Daemon
    from ragmon.monitor.runner import Runner
    from ragmon.monitor.store import Store

    out = out or sys.stdout
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    path = write_config(data, port, out, plugins)
    print(f"ragmon demo: config {path}", file=out)
    config = load_config(path, plugins)

    # 1. Each probe once, as `ragmon probe NAME --once` would print it.
    store = Store(config.store.url.get_secret_value())
    store.migrate()
    context = ProbeContext(config, store, plugins)
    failed = 0
    runner = Runner(context, CollectorRegistry(), plugins.probes)
    for name in config.probes:
        result, run_id = runner.run(name)
        failed += result.status != "ok"
        print("\n" + runner.probes[name].render(result) + f"\n(stored as run {run_id})",
              file=out)

    # 2. The daemon itself (sharing the loaded model and index): scheduled runs, the HTTP
    # endpoints, a clean stop.
    before = {name: len(store.runs(probe=name, limit=1000)) for name in config.probes}
    daemon = Daemon(config, context=context)
    daemon.start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while http_get(base + "/healthz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        # The daemon runs every probe right after start: wait for those scheduled runs.
        while time.monotonic() < deadline + 150 and not all(
            len(store.runs(probe=name, limit=1000)) > before[name] for name in config.probes
        ):
            time.sleep(0.5)
        for endpoint in ("/healthz", "/readyz"):
            status, body = http_get(base + endpoint)
            print(f"GET {endpoint} -> {status} {body.strip()}", file=out)
        status, body = http_get(base + "/metrics")
        samples = [line for line in body.splitlines() if line.startswith("ragmon_")]
        print(f"GET /metrics -> {status}, {len(samples)} ragmon samples, among them:", file=out)
        for line in samples:
            if _headline(line):
                print("  " + line, file=out)
        if serve:
            print(f"\nserving on {base} (Ctrl-C to stop)", file=out)
            signal.signal(signal.SIGTERM, lambda *_: daemon.stop_event.set())
            while not daemon.stop_event.wait(1.0):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        daemon.shutdown()
        store.close()
    print(f"\nragmon demo: {'all probes ok' if not failed else f'{failed} probe(s) failed'}; "
          f"history in {data / 'ragmon.db'}", file=out)
    return 0 if not failed else 1
