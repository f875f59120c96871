"""The ``--out`` HTML as a browser shows it: ``ragmon report --out`` writes the week's report,
headless Chromium (Debian's ``chromium``, installed by scripts/setup) renders it to a PNG and
dumps the DOM it built; the picture is the right size and not blank, and the page has every
section."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from ragmon.monitor.app import main

from .history import Week

WIDTH, HEIGHT = 1000, 2000
SECTIONS = ("headline", "recall-docs-recall", "drift-queries-drift", "canary", "alerts",
            "housekeeping")


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "chromium is not installed: run ./scripts/setup"
    return found


def browse(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp / 'profile'}", f"--window-size={WIDTH},{HEIGHT}", *args],
        capture_output=True, text=True, timeout=60, check=False)


def test_chromium_renders_the_out_file_with_every_section(week: Week, tmp_path: Path,
                                                          capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report.html"
    code = main(["report", "-c", str(week.tmp / "ragmon.yaml"), "--since", "2026-11-23T08:00Z",
                 "--until", "2026-11-30T08:00Z", "--out", str(out)])
    assert code == 0
    assert capsys.readouterr().out == (f"report {week.period.key}: degraded; written to {out}\n")
    shot = tmp_path / "report.png"
    done = browse([f"--screenshot={shot}", out.as_uri()], tmp_path)
    assert done.returncode == 0, done.stderr
    assert shot.exists() and "bytes written to file" in done.stderr + done.stdout
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (WIDTH, HEIGHT)

    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200, "the page rendered blank"
    dom = browse(["--dump-dom", out.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr
    for section in SECTIONS:
        assert f'id="{section}"' in dom.stdout, section
    assert dom.stdout.count("<img ") == out.read_text().count("<img ") >= 7
