"""Memory of a ragmon container, the figures the Helm chart's requests and limits come from.

Three daemons on throwaway SQLite stores, each `ragmon run` as in a pod:
1. no probe (the model is never loaded): scheduler, store, HTTP listener;
2. the canary only (MiniLM loaded after its first run);
3. the demo setup (`ragmon demo`'s config: canary, a recall probe over the FAISS HNSW index of
   the standard-library corpus, the largest real-text index the tests build, and an index
   drift probe), after every probe has run once.
For each: VmRSS after idling and VmHWM, the peak resident size since start, which is what a
memory limit must cover (an OOM kill happens at the peak, not at the idle figure). The peer,
in the same run, is a bare Python process that only loads the same model.

    .venv/bin/python bench/pod_memory.py
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon_rss import model_floor_rss  # noqa: E402

from ragmon.monitor.http import free_port  # noqa: E402


def status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def measure(config: Path, wait_for: list[str], idle: float) -> tuple[float, float]:
    """(VmRSS after idling, VmHWM) of `ragmon run` on this config once, for every string in
    ``wait_for``, a metric line holding it has the value 1."""
    port = int(yaml.safe_load(config.read_text())["server"]["listen"].rpartition(":")[2])
    proc = subprocess.Popen([sys.executable, "-m", "ragmon.monitor", "run", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
                if all(any(w in line and line.endswith(" 1.0")
                           for line in body.splitlines()) for w in wait_for):
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            raise RuntimeError(f"daemon on {config} did not report {wait_for}")
        time.sleep(idle)
        return status_mib(proc.pid, "VmRSS"), status_mib(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(60)


def plain_config(folder: Path, with_model: bool) -> Path:
    probes = {"canary": {"kind": "canary", "embedder": "minilm", "every": "1h"}} \
        if with_model else {}
    cfg = {"store": {"url": "sqlite:///ragmon.db"},
           "server": {"listen": f"127.0.0.1:{free_port()}"},
           "embedders": {"minilm": {"kind": "sentence-transformers"}}, "probes": probes}
    path = folder / f"ragmon-{with_model}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def demo_config(folder: Path) -> Path:
    from ragmon.monitor.app import default_plugins
    from ragmon.monitor.demo.run import write_config

    return write_config(folder, free_port(), io.StringIO(), default_plugins())


def main() -> None:
    idle = float(os.environ.get("IDLE_SECONDS", "10"))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        rows.append(("no model (no probe)", *measure(plain_config(folder, False),
                                                     ["ragmon_build_info{"], idle)))
        canary = 'ragmon_probe_success{kind="canary",probe="canary"'
        rows.append(("MiniLM loaded (canary)",
                     *measure(plain_config(folder, True), [canary], idle)))
        demo = folder / "demo"
        demo.mkdir()
        config = demo_config(demo)
        probes = yaml.safe_load(config.read_text())["probes"]
        wait = [f'ragmon_probe_success{{kind="{p["kind"]}",probe="{name}"'
                for name, p in probes.items()]
        rows.append(("demo: canary + recall + index drift", *measure(config, wait, idle)))
    floor = model_floor_rss(idle)
    print(f"{'daemon':40} {'VmRSS idle':>11} {'VmHWM peak':>11}")
    for name, rss, hwm in rows:
        print(f"{name:40} {rss:8.1f} MiB {hwm:8.1f} MiB")
    print(f"{'peer: bare MiniLM load':40} {floor:8.1f} MiB")
    print(f"ratio demo peak / bare model load: {rows[2][2] / floor:.2f}")


if __name__ == "__main__":
    main()
