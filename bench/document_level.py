"""Document-level against chunk-level recall on a chunk index: the figures of docs/recall.md,
"Chunks and documents".

    HF_HUB_OFFLINE=1 .venv/bin/python bench/document_level.py

Data: MiniLM (all-MiniLM-L6-v2) embeddings of the stdlib docstring corpus indexed as pages
(a page is a module's documentation, its chunks the module's docstring chunks, ids
``module/name``), in a flat FAISS index, through the test suite's deployment
(``PagesEnv`` of tests/probes/recall/test_documents.py, which asserts the same effects on
every CI run). The questions are the hand-written ones of
tests/probes/recall/data/stdlib_pages.jsonl, judged by page. Three recall probes run over
the same index: ``chunk-level`` (every chunk of every relevant page listed, scored on
chunks), ``page-level`` (the same judgments, ``documents: {separator: "/"}``) and
``page-judged`` (the pages themselves). After a healthy baseline, 20% of the relevant
pages are deleted (seed 7, as in the test) and each probe runs again. Writes the table to
bench/results/document_level.txt.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "results" / "document_level.txt"
PROBES = ("chunk-level", "page-level", "page-judged")
K = 10


def value(result: Any, name: str, **labels: Any) -> float | None:
    want = {k: str(v) for k, v in labels.items()}
    for n, lab, v in result.values:
        if n == name and {k: str(x) for k, x in lab.items()} == want:
            return float(v)
    return None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _row(label: str, probe: str, result: Any) -> str:
    drop = value(result, "recall_drop_significant", k=K)
    drop_text = "-" if drop is None else ("significant drop" if drop else "no drop")
    d = result.details
    missing = d["evidence"].get("docs_missing", 0)
    total = d["evidence"].get("docs_total", 0)
    return (f"| {label} | {probe} | {d['level']} | "
            f"{_fmt(value(result, 'recall_ratio', k=K, mode='exact'))} | "
            f"{_fmt(value(result, 'recall_ratio', k=K, mode='live'))} | "
            f"{_fmt(value(result, 'chunk_recall_ratio', k=K, mode='exact'))} | "
            f"{drop_text} | {d['verdict']} | {missing} of {total} |")


def measure(env: Any) -> list[str]:
    rows = [f"| state | probe | level | recall@{K} exact | recall@{K} live | "
            f"chunk recall@{K} exact | vs baseline | verdict | golden missing |",
            "|---|---|---|---|---|---|---|---|---|"]
    before = {p: env.run(p)[0] for p in PROBES}
    rows += [_row("all pages", p, before[p]) for p in PROBES]
    pages = sorted({p for r in env.pages for p in r["relevant"]})
    gone = set(np.random.default_rng(7).choice(pages, size=round(0.2 * len(pages)),
                                                replace=False).tolist())
    keep = np.array([i for i, p in enumerate(env.page_ids) if p.split("/")[0] not in gone])
    env.write_pages(keep)
    after = {p: env.run(p)[0] for p in PROBES}
    rows += [_row(f"{len(gone)} of {len(pages)} pages deleted", p, after[p]) for p in PROBES]
    chunks = [sum(p.split("/")[0] in r["relevant"] for p in env.page_ids) for r in env.pages]
    judged = sum(c > 0 for c in chunks)
    bound = np.mean([min(1.0, K / c) for c in chunks if c])
    rows += ["", f"{judged} questions with a relevant page in the corpus, {len(pages)} relevant "
             f"pages; relevant chunks per question: median {np.median(chunks):.0f}, "
             f"max {max(chunks)}; a perfect chunk ranking's mean recall@{K}: {bound:.3f}.",
             f"Deleted pages named by the page-judged verdict: "
             f"{', '.join(after['page-judged'].details['evidence']['docs_missing_ids'])}; "
             f"judged pages no search had returned (unchecked): "
             f"{after['page-judged'].details['causes'].get('docs_unchecked')}."]
    return rows


def main() -> None:
    from _stdlib import stdlib_embeddings

    from tests.probes.recall.test_documents import PagesEnv

    minilm, corpus, vectors = stdlib_embeddings()
    with tempfile.TemporaryDirectory() as tmp:
        env = PagesEnv(Path(tmp), minilm, corpus, vectors)
        try:
            lines = measure(env)
        finally:
            env.close()
    text = "\n".join(lines) + "\n"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(text, end="")


if __name__ == "__main__":
    main()
