"""Per-reference false-positive rate of MMD judged against a pinned reference's simulated
null, on MiniLM embeddings of the stdlib docstring corpus.

Every sample (reference, holdout, live window) is drawn independently with replacement
from the corpus: i.i.d. draws from one fixed distribution, as live traffic is. For each
reference the null is simulated from its holdout (``calibration.mmd_null``) and 200 live
no-drift windows are judged against it; the rate per reference is printed, worst first.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/drift_reference_null.py [m n h refs windows]
    # add --raw to judge against the uncorrected holdout null (widen=False)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from _stdlib import stdlib_embeddings

    from ragmon.probes.drift.calibration import _kernel, mmd_null
    from ragmon.probes.drift.methods.mmd import median_gamma

    args = [a for a in sys.argv[1:] if a != "--raw"]
    m, n, h, refs, wins = (int(a) for a in (args or ["100", "400", "400", "10", "200"]))
    _, _, x = stdlib_embeddings()

    def stat(r: np.ndarray, w: np.ndarray, g: float) -> float:
        a, b = len(r), len(w)
        return float((_kernel(r, r, g).sum() - a) / (a * (a - 1))
                     + (_kernel(w, w, g).sum() - b) / (b * (b - 1))
                     - 2 * _kernel(r, w, g).sum() / (a * b))

    rng = np.random.default_rng(1)
    rates: dict[float, list[float]] = {0.05: [], 0.02: []}
    for r in range(refs):
        ref, hold = x[rng.integers(0, len(x), n)], x[rng.integers(0, len(x), h)]
        g = median_gamma(ref)
        null = np.sort(mmd_null(ref, hold, m, 2000, g, seed=r, widen="--raw" not in sys.argv))
        t = np.array([stat(ref, x[rng.integers(0, len(x), m)], g) for _ in range(wins)])
        p = (1 + (null[None, :] >= t[:, None]).sum(1)) / (null.size + 1)
        for alpha in rates:
            rates[alpha].append(float((p <= alpha).mean()))
    print(f"m={m} n={n} h={h}, {refs} references x {wins} windows")
    for alpha, v in rates.items():
        print(f"alpha {alpha}: worst {max(v):.3f}, mean {np.mean(v):.3f}, "
              f"per reference {sorted(v, reverse=True)}")


if __name__ == "__main__":
    main()
