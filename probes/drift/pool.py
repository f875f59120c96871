"""The drift probe's reference pool: a pinned reference fills window by window until it
holds the reference sample and a holdout of :data:`~calibration.MIN_HOLDOUT_WINDOWS`
windows; it is then split (seeded, across the whole pool), the deciding method's null for
that exact sample is simulated from the holdout, and both are stored with the reference.
A rolling reference is split the same way on every run (its pool is the period's windows).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ragmon.monitor.store import Store
from ragmon.probes.drift.calibration import (
    ReferenceNull,
    holdout_needed,
    simulate,
    split_pool,
)
from ragmon.probes.drift.config import DriftConfig
from ragmon.probes.drift.methods import DRIFT_METHODS, MethodResult
from ragmon.probes.references import Reference, arrange_reference, extend_reference


def pool_need(cfg: DriftConfig) -> int:
    """Rows a reference pool needs: the sample and a holdout of 4 windows."""
    return cfg.reference.size + holdout_needed(cfg.window_size)


def calibrates(cfg: DriftConfig) -> bool:
    """Canary windows embed the same texts every run: their reference is not a sample of
    traffic, there is no sampling noise to condition on, and no pool."""
    return cfg.source != "canary"


def filling(reference: Reference, cfg: DriftConfig) -> bool:
    """True while the reference pool cannot yet be calibrated (no verdict is given)."""
    if not calibrates(cfg):
        return False
    if reference.pinned:  # a pin captured before pools existed is never filled: see legacy()
        return "reference_rows" not in reference.details and not legacy(reference)
    have = 0 if reference.holdout is None else len(reference.holdout)
    return have < holdout_needed(cfg.window_size)


def legacy(reference: Reference) -> bool:
    """A pinned reference captured before reference pools existed: it is left as the user
    pinned it (later traffic never joins it) and judged uncalibrated until re-captured."""
    return (reference.pinned and "reference_rows" not in reference.details
            and not reference.details.get("pool"))


def draws(cfg: DriftConfig, alpha: float) -> int:
    """Pseudo-windows to simulate: enough for calibrated p-values to resolve ``alpha``."""
    return max(cfg.reference.null_draws, math.ceil(10 / alpha))


def builder(cfg: DriftConfig, name: str) -> Any:
    """``f(reference, window, seed=...)`` for methods without a one-product null."""
    params = {**cfg.params_of(name), "min_samples": cfg.min_samples, "alpha": 0.5}
    if name in ("mmd", "clusters"):
        params["permutations"] = 1  # only the statistic is wanted
    if name == "centroid":
        params["bootstrap"] = 1

    def build(reference: np.ndarray, window: np.ndarray, seed: int) -> MethodResult:
        return DRIFT_METHODS.build(name, reference, window, **{**params, "seed": seed})

    return build


def fill(store: Store, reference: Reference, vectors: np.ndarray, item_ids: list[Any],
         texts: list[str | None], cfg: DriftConfig, alpha: float) -> dict[str, Any]:
    """Add a window to a pinned pool that is filling; calibrate it once it is full."""
    rows = extend_reference(store, reference.id, vectors, item_ids,
                            [None if t is None else t[:300] for t in texts], None)
    done = rows >= pool_need(cfg)
    if done:
        finish(store, reference.id, cfg, alpha)
    return {"have": rows, "need": pool_need(cfg), "calibrated": done}


def finish(store: Store, ref_id: int, cfg: DriftConfig, alpha: float) -> None:
    """Split a full pinned pool and store the deciding method's null with it."""
    from ragmon.probes.references import ReferenceSample

    with store.session() as s:
        row = s.get(ReferenceSample, ref_id)
        assert row is not None
        pool = np.frombuffer(row.vectors, np.float32).reshape(row.n, row.dimension).copy()
    size = min(cfg.reference.size, pool.shape[0] - holdout_needed(cfg.window_size))
    ref_rows, hold_rows = split_pool(pool.shape[0], size, cfg.seed)
    null = simulate_null(cfg, pool[ref_rows], pool[hold_rows], cfg.window_size, alpha)
    arrange_reference(store, ref_id, np.concatenate([ref_rows, hold_rows]), {
        "reference_rows": int(size), "null": {null.method: null.as_dict()},
    })


def simulate_null(cfg: DriftConfig, reference: np.ndarray, holdout: np.ndarray,
                  window: int, alpha: float) -> ReferenceNull:
    name = cfg.decider
    return simulate(name, reference, holdout, window, draws(cfg, alpha), cfg.seed,
                    cfg.params_of(name), builder(cfg, name))


def reference_null(reference: Reference, cfg: DriftConfig, window: int,
                   alpha: float) -> ReferenceNull | None:
    """The deciding method's null for ``reference`` and windows of ``window`` rows: the
    stored one when it fits, else simulated now from the stored holdout."""
    if not calibrates(cfg) or reference.holdout is None or filling(reference, cfg):
        return None
    if len(reference.holdout) < holdout_needed(window):  # a window larger than configured
        return None
    stored = reference.details.get("null", {}).get(cfg.decider)
    if stored is not None:
        null = ReferenceNull.from_dict(stored)
        if null.window == window and null.statistics.size >= draws(cfg, alpha):
            return null
    return simulate_null(cfg, reference.vectors, reference.holdout, window, alpha)


def calibrated(res: MethodResult, null: ReferenceNull, alpha: float) -> MethodResult:
    """``res`` judged against the reference's own null instead of a fresh-reference one."""
    p = null.p_value(res.statistic)
    details = {**res.details, "p_fresh_reference": res.p_value, "null_draws":
               int(null.statistics.size), "holdout_rows": null.holdout_rows}
    return replace(res, p_value=p, threshold=null.threshold(alpha), drifted=p <= alpha,
                   details=details)
