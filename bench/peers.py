"""The peers' side of the benchmark, run with the benchmark-only interpreter
(.bench-venv, which has alibi-detect and Evidently; ragmon never depends on them).

    python bench/peers.py TASK REF.npy CUR.npy [key=value ...]

prints one JSON object: seconds (wall time of the first test in this process, imports
excluded), import_s, p_value / drifted / statistic as the peer reports them. Run only by
bench/run.py and bench/mmd_vs_alibi.py.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np


def alibi_mmd(ref: np.ndarray, cur: np.ndarray, sigma: float, permutations: int) -> dict:
    """The first test in this fresh process (detector construction and ``predict``), the
    imports timed apart, then a second ``predict`` on the same detector (warm)."""
    start = time.perf_counter()
    import torch
    from alibi_detect.cd import MMDDrift

    import_s = time.perf_counter() - start
    torch.set_num_threads(2)
    start = time.perf_counter()
    detector = MMDDrift(ref, backend="pytorch", p_val=0.05, sigma=np.array([sigma]),
                        n_permutations=permutations, device="cpu")
    out = detector.predict(cur)["data"]
    first = time.perf_counter() - start
    start = time.perf_counter()
    detector.predict(cur)
    return {"import_s": import_s, "seconds": first, "second_s": time.perf_counter() - start,
            "p_value": float(out["p_val"]), "statistic": float(out["distance"]),
            "drifted": bool(out["is_drift"])}


def evidently_embeddings(ref: np.ndarray, cur: np.ndarray, full: bool) -> dict:
    """Evidently's default embeddings drift: ``model(bootstrap=n_ref < 1000)``, an SGD
    classifier's AUC on a split, "drift" when the AUC exceeds a fixed 0.55. ``core`` times
    that method alone; ``full`` (optional) the whole Report on Datasets, as users run it."""
    import pandas as pd
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import model

    cols = [f"e{i}" for i in range(ref.shape[1])]
    ref_df, cur_df = pd.DataFrame(ref, columns=cols), pd.DataFrame(cur, columns=cols)
    method = model(bootstrap=ref.shape[0] < 1000)  # the default EmbeddingsDrift uses
    start = time.perf_counter()
    score, drifted, _ = method(cur_df, ref_df)
    out = {"seconds": time.perf_counter() - start, "statistic": float(score),
           "drifted": bool(drifted)}
    if full:
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import EmbeddingsDrift

        definition = DataDefinition(embeddings={"emb": cols})
        start = time.perf_counter()
        ref_ds = Dataset.from_pandas(ref_df, data_definition=definition)
        cur_ds = Dataset.from_pandas(cur_df, data_definition=definition)
        Report([EmbeddingsDrift(embeddings_name="emb")]).run(cur_ds, ref_ds)
        out["seconds_full_report"] = time.perf_counter() - start
    return out


def main() -> None:
    task, ref_path, cur_path, *rest = sys.argv[1:]
    params = dict(p.split("=", 1) for p in rest)
    ref, cur = np.load(ref_path), np.load(cur_path)
    warnings.simplefilter("ignore")
    if task == "alibi_mmd":
        out = alibi_mmd(ref, cur, float(params["sigma"]), int(params["permutations"]))
    elif task == "evidently":
        out = evidently_embeddings(ref, cur, params.get("full") == "1")
    else:
        raise SystemExit(f"unknown task {task!r}; valid: alibi_mmd, evidently")
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
