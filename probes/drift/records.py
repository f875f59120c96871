"""Helpers that turn method results into stored rows, and coverage's nearest-neighbour
distances through a target."""

from __future__ import annotations

from typing import Any

import numpy as np

from ragmon.monitor.common import jsonable
from ragmon.probes.drift.methods import MethodResult
from ragmon.probes.drift.tables import DriftClusterShift


def nearest_distances(target: Any, vectors: np.ndarray) -> np.ndarray:
    """Cosine distance of each vector to its exact nearest neighbour in the index,
    recomputed from the fetched neighbour (engine scores may be quantized)."""
    found = target.exact_search(vectors, 1)
    first = [ids[0] if ids else None for ids in found.ids]
    fetched = target.fetch(sorted({i for i in first if i is not None}))
    by_id = dict(zip(fetched.ids, fetched.vectors, strict=True))
    out = np.full(len(vectors), 2.0)
    for row, nn in enumerate(first):
        if nn in by_id:
            a, b = vectors[row], by_id[nn]
            out[row] = 1.0 - float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)),
                                                1e-30)
    return out


def cluster_rows(res: MethodResult) -> list[DriftClusterShift]:
    rows = []
    for direction in ("grew", "shrank"):
        for rank, entry in enumerate(res.details.get(direction, [])):
            rows.append(DriftClusterShift(
                direction=direction, rank=rank, cluster=int(entry["cluster"]),
                reference_share=float(entry["reference_share"]),
                current_share=float(entry["current_share"]), change=float(entry["change"]),
                label=entry.get("label"), examples=jsonable(entry.get("examples", [])),
            ))
    return rows


def as_float(value: float | None) -> float | None:
    return None if value is None else float(value)

