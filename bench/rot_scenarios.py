"""The recall probe's verdicts through the kinds of rot a knowledge base goes through.

Each scenario starts a fresh deployment (the test suite's ``Env``: a FAISS HNSW index of
MiniLM embeddings of the stdlib docstring corpus, 65 hand-written golden questions, a SQLite
store), captures a baseline, applies one change and prints the verdict of the runs after it.
It is not part of the test suite: the suite asserts each verdict in
tests/probes/recall/test_scenarios.py; this prints them side by side as one table.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/rot_scenarios.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.probes.recall.conftest import Env, write_index  # noqa: E402


def verdict(env: Env, probe: str = "docs-recall") -> str:
    result, _ = env.run(probe)
    if result.status != "ok":
        return f"failed: {result.error}"
    return str(result.details.get("verdict"))


def with_baseline(env: Env) -> None:
    env.run("canary")
    first = verdict(env)
    assert first == "healthy", first


def no_change(env: Env) -> list[str]:
    with_baseline(env)
    return [verdict(env) for _ in range(3)]


def weak_index(env: Env) -> list[str]:
    with_baseline(env)
    env.target["ef_search"] = 2
    env.reload()
    return [verdict(env) for _ in range(2)]


def pq_nprobe_1(env: Env) -> list[str]:
    with_baseline(env)
    write_index(env.index, env.vectors, env.ids, kind="ivfpq")
    env.target["nprobe"] = 1
    env.reload()
    return [verdict(env) for _ in range(2)]


def pipeline_change(env: Env) -> list[str]:
    with_baseline(env)
    env.embedder["max_seq_length"] = 6
    env.model = env.truncating_embedder(6)
    env.reload()
    env.run("canary")
    return [verdict(env) for _ in range(2)]


def question_reworded(env: Env) -> list[str]:
    with_baseline(env)
    rows = [json.loads(line) for line in env.golden.read_text().splitlines()]
    rows[4]["query"] = "How can a base64 text be turned back into raw bytes?"
    env.golden.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return [verdict(env) for _ in range(3)]


def documents_deleted(env: Env) -> list[str]:
    with_baseline(env)
    docs = env.golden_doc_ids()
    rng = np.random.default_rng(7)
    gone = set(rng.choice(docs, size=round(0.2 * len(docs)), replace=False).tolist())
    keep = [i for i, d in enumerate(env.ids) if d not in gone]
    write_index(env.index, env.vectors[keep], [env.ids[i] for i in keep])
    return [verdict(env) for _ in range(2)]


def canary_stale(env: Env) -> list[str]:
    """The pipeline breaks, the canary sees it, the pipeline is fixed; the canary does not
    run again (it is failing, or its interval is long)."""
    pipeline_change(env)
    env.embedder.pop("max_seq_length")
    env.model = env.minilm
    env.reload()
    return [verdict(env) for _ in range(2)]


def degraded_on_fresh_store(env: Env) -> list[str]:
    write_index(env.index, env.vectors, env.ids, kind="ivfpq")
    env.target["nprobe"] = 1
    env.reload()
    env.run("canary")
    return [verdict(env) for _ in range(2)]


SCENARIOS: dict[str, tuple[str, Callable[[Env], list[str]]]] = {
    "no change": ("healthy", no_change),
    "weak index (HNSW ef_search 2)": ("index", weak_index),
    "rebuilt as IVF-PQ, nprobe 1": ("index", pq_nprobe_1),
    "query pipeline changed (truncation)": ("embedding", pipeline_change),
    "golden question reworded": ("golden-set-changed, then healthy", question_reworded),
    "20% of golden documents deleted": ("content", documents_deleted),
    "canary stale after the pipeline was fixed": ("healthy", canary_stale),
    "fresh store, index already degraded": ("not a silent healthy baseline",
                                            degraded_on_fresh_store),
}


def main() -> None:
    from _stdlib import stdlib_embeddings

    minilm, corpus, vectors = stdlib_embeddings()
    print("| scenario | expected | verdicts of the runs after the change |")
    print("|---|---|---|")
    for name, (expected, scenario) in SCENARIOS.items():
        with tempfile.TemporaryDirectory() as tmp:
            env = Env(Path(tmp), minilm, corpus, vectors)
            try:
                got: Any = scenario(env)
            except Exception as exc:  # a scenario that cannot run is reported, not hidden
                got = [f"error: {type(exc).__name__}: {exc}"]
            finally:
                env.close()
        print(f"| {name} | {expected} | {', '.join(got)} |", flush=True)


if __name__ == "__main__":
    main()
