"""Render bench/results.json (written by bench/run.py) as the Markdown tables of
bench/README.md.

    .venv/bin/python bench/report.py [bench/results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def mmd_table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| n = m | windows | ragmon s | alibi-detect s | speed-up | ragmon p | alibi p | "
           "MC error of p (2 sd) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ours, theirs = r["ragmon"], r["alibi"]
        p = ours["p_value"]
        mc = 2 * np.sqrt(max(p * (1 - p), 1 / 101) / 100)
        out.append(
            f"| {r['n']:,} | {'20% injection' if r['drift'] else 'no drift'} | "
            f"{ours['seconds']:.2f} | {theirs.get('seconds', float('nan')):.1f} | "
            f"{r.get('speedup', float('nan')):.0f}× | {p:.3f} | "
            f"{theirs.get('p_value', float('nan')):.3f} | ±{mc:.3f} |"
        )
    return out


def rff_table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| windows | features D | exact MMD² | RFF MMD² | error / null sd | p exact | "
           "p RFF | s exact | s RFF |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {'20% injection' if r['drift'] else 'no drift'} | {r['features']:,} | "
            f"{r['exact']:.3g} | {r['rff']:.3g} | {r['error_in_null_sd']:+.2f} | "
            f"{r['p_exact']:.3f} | {r['p_rff']:.3f} | {r['seconds_exact']:.2f} | "
            f"{r['seconds_rff']:.2f} |"
        )
    return out


def classifier_table(res: dict[str, Any]) -> list[str]:
    out = ["| tool | mean s per window | detected, 20% injection | flagged, no drift |",
           "|---|---|---|---|"]
    for tool in ("ragmon", "evidently"):
        runs = res[tool]
        if not runs.get("drift"):
            continue
        secs = np.mean([r["seconds"] for r in runs["drift"] + runs["no_drift"]])
        hit = sum(bool(r.get("drifted")) for r in runs["drift"])
        false = sum(bool(r.get("drifted")) for r in runs["no_drift"])
        out.append(f"| {tool} | {secs:.2f} | {hit}/{len(runs['drift'])} | "
                   f"{false}/{len(runs['no_drift'])} |")
    full = [r.get("seconds_full_report") for r in res["evidently"].get("drift", [])
            if r.get("seconds_full_report")]
    if full:
        out.append("")
        out.append(f"Evidently's whole Report (Dataset.from_pandas + EmbeddingsDrift) took "
                   f"{full[0]:.1f} s for one window pair of {res['n']:,} rows each.")
    return out


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results.json")
    res = json.loads(path.read_text())
    lines = ["### MMD² vs alibi-detect MMDDrift (pytorch, CPU), 100 permutations", ""]
    lines += mmd_table(res["mmd_vs_alibi"])
    large = res["large"]
    lines += ["", f"### ragmon MMD² at n = m = {large.get('n', 0):,}", ""]
    if "error" in large:
        lines.append(f"failed: {large['error']}")
    else:
        lines.append(f"{large['seconds']:.1f} s, peak RSS {large['peak_rss_mb']:.0f} MB "
                     f"(of which {large['rss_before_mb']:.0f} MB before the test: "
                     f"interpreter, corpus, windows), kernel {large['kernel']}, "
                     f"p = {large['p_value']:.3f}.")
    lines += ["", "### Random Fourier features vs exact (n = m = 5,000)", ""]
    lines += rff_table(res["rff_accuracy"])
    lines += ["", "### Domain classifier vs Evidently's default embeddings drift", ""]
    lines += classifier_table(res["classifier_vs_evidently"])
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
