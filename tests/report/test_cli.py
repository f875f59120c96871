"""``ragmon report`` from the command line: the default period, the text part on stdout,
and one clear line for each bad argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ragmon.monitor.app import main
from ragmon.monitor.store import RunRecord, Store


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'ragmon.db'}"
    Store(url).migrate()
    path = tmp_path / "ragmon.yaml"
    path.write_text(yaml.safe_dump({
        "store": {"url": url},
        "targets": {"docs": {"kind": "faiss", "path": "index.faiss"}},
        "golden_sets": {"g": {"path": "golden.jsonl"}},
        "probes": {"docs-recall": {"kind": "recall", "target": "docs", "golden_set": "g"}},
    }))
    return path


def test_the_default_period_is_the_last_seven_days(config_file: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    store = Store(f"sqlite:///{config_file.parent / 'ragmon.db'}")
    now = datetime.now(UTC)
    for days, error in ((8, "too old to count"), (2, "index file not found")):
        at = now - timedelta(days=days)
        store.record_run(RunRecord("docs-recall", "recall", "docs", at, at, "failed", error))
    store.close()
    assert main(["report", "-c", str(config_file)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "FAILING: every one of the 1 probe runs failed." in out
    assert "index file not found" in out and "too old to count" not in out
    since = (now - timedelta(days=7)).strftime("%Y-%m-%d")
    assert f"ragmon weekly report, {since} " in out


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "2026-13-01"], "argument --since: '2026-13-01' is not a date or time; use "
                                "ISO 8601 such as 2026-11-23 or 2026-11-23T08:00Z"),
    (["--since", "2026-11-30", "--until", "2026-11-23"],
     "ragmon report: error: --since 2026-11-30T00:00Z is not before --until "
     "2026-11-23T00:00Z; give a start earlier than the end"),
])
def test_a_bad_period_is_one_clear_line(config_file: Path, capsys, args: list[str],  # type: ignore[no-untyped-def]
                                        message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "-c", str(config_file), *args])
    assert exc.value.code != 0
    err = capsys.readouterr().err + str(exc.value.code if isinstance(exc.value.code, str) else "")
    assert message in err


def test_an_unwritable_out_file_is_one_clear_line(config_file: Path, tmp_path: Path,
                                                  capsys) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "no-such-folder" / "report.html"
    assert main(["report", "-c", str(config_file), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == (f"ragmon report: error: cannot write --out '{target}': No such file or "
                   "directory; choose a writable path\n")
