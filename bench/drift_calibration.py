"""False alarms per pinned reference, before and after calibration conditional on it.

    nice .venv/bin/python bench/drift_calibration.py [--refs 10 --windows 200 --size 500]

Real MiniLM embeddings of real text (``bench/_calibration_corpus.py``: the stdlib corpus
augmented to about 9,000 chunks; the held-out topic is asyncio). For each of ``--refs``
references: a seeded draw of ``size`` reference rows and a disjoint holdout of 4 windows
from the no-drift population; ``--windows`` no-drift windows of ``size`` rows, each drawn
without replacement from the population minus the reference sample (the corpus is finite:
windows overlap one another, never the reference). Every window is judged twice on the same
MMD² statistic:

- before: the permutation p-value (a fresh-reference null), as the probe did;
- after: the calibrated p-value against the reference's own simulated null (2,000
  pseudo-windows of the holdout), as the probe does now.

Both go through the default alarm rule (one false alarm per 30 days, hourly windows,
2 of 3: alpha 0.0215) and CUSUM. Power: 20% asyncio injections at the same size.
Writes bench/results/drift_calibration.txt.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _calibration_corpus import REPO, calibration_corpus
from scipy import stats

from ragmon.probes.drift import alarms
from ragmon.probes.drift.calibration import holdout_needed, simulate
from ragmon.probes.drift.methods.mmd import mmd
from ragmon.probes.drift.pool import calibrated

HOUR, MONTH = 3600.0, 30 * 86400.0


def onsets(flags: list[bool]) -> int:
    """Alarms raised (pages): windows where the alarm turns on."""
    return sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))


def one_reference(vectors: np.ndarray, pool: np.ndarray, topic: np.ndarray, size: int,
                  windows: int, power_windows: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(pool)
    ref_rows, hold_rows = order[:size], order[size:size + holdout_needed(size)]
    others = order[size:]
    ref = vectors[ref_rows]
    k_of_n = alarms.calibrate(1, MONTH, HOUR, "k_of_n", 2, 3)
    cusum = alarms.calibrate(1, MONTH, HOUR, "cusum")
    alpha = k_of_n.alpha
    null = simulate("mmd", ref, vectors[hold_rows], size, 2000, seed=seed)
    gamma = null.params["gamma"]
    before: list[tuple[bool, float]] = []
    after: list[tuple[bool, float]] = []
    for i in range(windows):
        cur = vectors[rng.choice(others, size, replace=False)]
        res = mmd(ref, cur, alpha=alpha, permutations=500, gamma=gamma, seed=seed * 1000 + i)
        assert res.p_value is not None
        before.append((res.drifted, res.p_value))
        cal = calibrated(res, null, alpha)
        assert cal.p_value is not None
        after.append((cal.drifted, cal.p_value))
    detected = 0
    for i in range(power_windows):
        k = size // 5
        cur = np.concatenate([rng.choice(others, size - k, replace=False),
                              rng.choice(topic, k, replace=False)])
        res = mmd(ref, vectors[cur], alpha=alpha, permutations=10, gamma=gamma, seed=i)
        detected += calibrated(res, null, alpha).drifted
    out: dict[str, float] = {"detected": detected}
    for name, verdicts in (("before", before), ("after", after)):
        out[f"{name}_differs"] = sum(d for d, _ in verdicts) / windows
        out[f"{name}_k_of_n"] = onsets(alarms.replay(k_of_n, verdicts))
        out[f"{name}_cusum"] = onsets(alarms.replay(cusum, [(p <= cusum.alpha, p)
                                                           for _, p in verdicts]))
    return out


def report(rows: list[dict[str, float]], args: argparse.Namespace, seconds: float) -> str:
    q = 1 / 720
    bound = int(stats.binom.ppf(0.95, args.windows, q))
    alpha = alarms.calibrate(1, MONTH, HOUR, "k_of_n", 2, 3).alpha
    lines = [
        f"# Drift alarms per pinned reference: {args.refs} references x {args.windows} "
        f"no-drift windows, n = m = {args.size}, holdout {holdout_needed(args.size)} rows",
        f"# budget 1 per 30 days, hourly windows: {args.windows * q:.2f} alarms per "
        f"reference expected, 95% upper bound {bound}; per-window alpha {alpha:.4f}",
        "| reference | differs before | differs after | 2-of-3 alarms before | after "
        "| CUSUM alarms before | after | power (20% injection) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        lines.append(
            f"| {i + 1} | {r['before_differs']:.3f} | {r['after_differs']:.3f} | "
            f"{r['before_k_of_n']:.0f} | {r['after_k_of_n']:.0f} | {r['before_cusum']:.0f} | "
            f"{r['after_cusum']:.0f} | {r['detected']:.0f}/{args.power} |")
    for label, f in (("worst", max), ("mean", lambda v: sum(v) / len(v))):
        cells = [f([r[k] for r in rows]) for k in (
            "before_differs", "after_differs", "before_k_of_n", "after_k_of_n",
            "before_cusum", "after_cusum")]
        lines.append(f"| {label} | {cells[0]:.3f} | {cells[1]:.3f} | {cells[2]:.2f} | "
                     f"{cells[3]:.2f} | {cells[4]:.2f} | {cells[5]:.2f} | |")
    power = sum(r["detected"] for r in rows) / (args.power * len(rows))
    lines.append(f"# power at a 20% injection: {power:.3f}; {seconds:.0f} s")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, default=10)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--power", type=int, default=10)
    parser.add_argument("--out", default=str(REPO / "bench/results/drift_calibration.txt"))
    args = parser.parse_args()
    vectors, topics = calibration_corpus()
    pool, topic = np.flatnonzero(topics != "asyncio"), np.flatnonzero(topics == "asyncio")
    start = time.perf_counter()
    rows = []
    for r in range(args.refs):
        rows.append(one_reference(vectors, pool, topic, args.size, args.windows,
                                  args.power, seed=100 + r))
        print(r, rows[-1], flush=True)
    text = report(rows, args, time.perf_counter() - start)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
