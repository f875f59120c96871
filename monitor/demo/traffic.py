"""Query traffic for the demo's drift probe: realistic user questions drawn from a topic mix.

A RAG app over the standard-library docs is asked what its users need that day. The
generator draws each query's topic from a ``mix`` (topic -> share), then writes the query
the way users do: one of the intents users ask about that topic (the golden questions
tagged with it), or a question about one of the topic's documented objects (``what does
Path.glob return``), each in a varied phrasing ("how can I ...", "... in python", "python:
..."). The same mix and seed always give the same texts.

Topics the index covers are the golden set's topic tags (``files``, ``math``, ``web``, ...).
Topics it covers poorly are there to inject a topic shift: ``ml-training`` and
``web-frameworks`` (questions the standard-library docs do not answer) and
``held-out-stdlib`` (standard-library modules that are not in the index, such as
``dataclasses`` or ``concurrent.futures``). :func:`shifted` moves a share of any mix
towards one of them.

The texts go to the daemon like an app would send them: appended to the JSONL file the
drift probe tails (:func:`append_jsonl`, one ``{"query": ...}`` object per line), or posted
to its ``/ingest/<probe>`` endpoint (:func:`post`).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ragmon.monitor.demo.beir import demo_golden_path, document_of
from ragmon.monitor.demo.corpus import DEFAULT_MODULES, stdlib_corpus

#: Standard-library modules deliberately kept out of the demo index.
HELD_OUT_MODULES: tuple[str, ...] = (
    "dataclasses", "concurrent.futures", "graphlib", "sched", "zoneinfo", "abc", "venv",
    "cProfile", "tracemalloc", "doctest",
)

#: Questions the standard-library docs do not answer (hand-written, by topic).
OFF_INDEX_INTENTS: dict[str, tuple[str, ...]] = {
    "ml-training": (
        "fine-tune a transformer model on two GPUs", "train a LoRA adapter with mixed "
        "precision", "why does my CUDA run out of memory during training",
        "quantize a llama model to 4 bits", "set the learning rate schedule with warmup",
        "shard a large model across several nodes", "resume training from a checkpoint",
        "evaluate a classifier with cross validation", "use gradient accumulation with a "
        "small batch size", "export a pytorch model to onnx", "distill a big model into a "
        "small one", "choose the batch size for an A100", "freeze the first layers of a "
        "pretrained network", "tokenize a dataset for language model training",
        "track experiments and loss curves", "train an embedding model with a contrastive "
        "loss",
    ),
    "web-frameworks": (
        "add a login page to my django site", "return JSON from a flask route",
        "define request validation in fastapi", "run database migrations in django",
        "serve static files with nginx in front of gunicorn", "set up CORS for my api",
        "render a jinja template with a loop", "write a middleware that checks API keys",
        "paginate a queryset in django rest framework", "deploy a flask app to kubernetes",
        "upload files in a fastapi endpoint", "use websockets with fastapi",
    ),
}

#: Ways users phrase a question; ``{q}`` is the intent (lower-case start, no final '?').
PHRASINGS: tuple[str, ...] = (
    "{q}", "{q}?", "how can I {q}", "how do I {q}", "{q} in python", "python: {q}",
    "quick question: {q}", "is there a simple way to {q}?", "what's the best way to {q}",
    "{q} (python 3)",
)
#: Questions about one documented object; ``{o}`` is its short name (``Path.glob``).
OBJECT_PHRASINGS: tuple[str, ...] = (
    "what does {o} do", "how do I use {o}", "example of {o}", "{o} not working as expected",
    "when should I use {o}", "what arguments does {o} take", "what does {o} return",
    "is {o} thread safe", "{o} in python", "explain {o} with an example",
)
#: Share of a covered topic's queries that are golden intents (the rest ask about objects).
INTENT_SHARE = 0.6


def _intent(text: str) -> str:
    """A question as an intent to rephrase: no final '?', lower-case start (unless the
    first word is an acronym such as TLS)."""
    text = text.strip().rstrip("?").strip()
    first = text.split(" ", 1)[0]
    return text if first.isupper() else text[:1].lower() + text[1:]


def _short(doc: str) -> str:
    """How users name a documented object: its last two dotted parts (``Path.glob``,
    ``os.walk``, ``dataclasses.field``)."""
    return ".".join(doc.split(".")[-2:])


@lru_cache(maxsize=4)
def _covered(golden: Path) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Covered topic -> (intents, object names), from the golden set's tags: the first tag
    names the module, the second the topic."""
    intents: dict[str, list[str]] = {}
    modules: dict[str, set[str]] = {}
    for line in golden.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        row = json.loads(line)
        tags = row.get("tags") or []
        if len(tags) < 2 or "query" not in row:
            continue
        intents.setdefault(tags[1], []).append(_intent(row["query"]))
        modules.setdefault(tags[1], set()).add(tags[0])
    corpus = stdlib_corpus()
    out = {}
    for topic, mods in sorted(modules.items()):
        full = {m for m in DEFAULT_MODULES if m.split(".")[0] in mods or m in mods}
        objects = sorted({_short(document_of(c.id)) for c in corpus if c.topic in full})
        out[topic] = (tuple(intents[topic]), tuple(objects))
    return out


@lru_cache(maxsize=1)
def held_out_objects() -> tuple[str, ...]:
    """The documented objects of :data:`HELD_OUT_MODULES`, named as users name them."""
    return tuple(sorted({_short(document_of(c.id)) for c in stdlib_corpus(HELD_OUT_MODULES)}))


def covered_topics(golden: Path | None = None) -> list[str]:
    """The topics the demo index covers (the golden set's topic tags)."""
    return list(_covered(golden or demo_golden_path()))


def off_index_topics() -> list[str]:
    """Topics the demo index covers poorly or not at all."""
    return [*OFF_INDEX_INTENTS, "held-out-stdlib"]


def healthy_mix(golden: Path | None = None) -> dict[str, float]:
    """Everyday traffic: covered topics in the proportions of the golden set's questions."""
    covered = _covered(golden or demo_golden_path())
    total = sum(len(intents) for intents, _ in covered.values())
    return {t: len(intents) / total for t, (intents, _) in covered.items()}


def shifted(mix: Mapping[str, float], toward: str | Sequence[str],
            share: float) -> dict[str, float]:
    """``mix`` with ``share`` of its traffic moved to the topic(s) ``toward`` (split evenly)."""
    targets = [toward] if isinstance(toward, str) else list(toward)
    if not 0.0 <= share <= 1.0 or not targets:
        raise ValueError(f"share must be in [0, 1] and toward non-empty, got {share!r}, "
                         f"{toward!r}")
    total = sum(mix.values())
    out = {t: (1.0 - share) * w / total for t, w in mix.items()}
    for t in targets:
        out[t] = out.get(t, 0.0) + share / len(targets)
    return out


def _pools(golden: Path) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    pools = dict(_covered(golden))
    pools.update({t: (intents, ()) for t, intents in OFF_INDEX_INTENTS.items()})
    pools["held-out-stdlib"] = ((), held_out_objects())
    return pools


def generate(n: int, mix: Mapping[str, float] | None = None, seed: int = 0,
             golden: Path | None = None) -> list[str]:
    """``n`` query texts whose topics follow ``mix`` (default :func:`healthy_mix`)."""
    import numpy as np

    golden = golden or demo_golden_path()
    mix = healthy_mix(golden) if mix is None else dict(mix)
    pools = _pools(golden)
    unknown = sorted(set(mix) - set(pools))
    if unknown:
        raise ValueError(f"unknown topic {unknown[0]!r} in the mix; topics: "
                         f"{', '.join(sorted(pools))}")
    topics = [t for t, w in mix.items() if w > 0]
    weights = np.array([mix[t] for t in topics], dtype=float)
    if n and (not topics or not np.isfinite(weights).all()):
        raise ValueError("the mix needs at least one topic with a positive, finite share")
    rng = np.random.default_rng(seed)
    chosen: list[int] = (rng.choice(len(topics), size=n, p=weights / weights.sum()).tolist()
                         if n else [])
    texts: list[str] = []
    for index in chosen:
        intents, objects = pools[topics[int(index)]]
        if intents and (not objects or rng.random() < INTENT_SHARE):
            form = PHRASINGS[int(rng.integers(len(PHRASINGS)))]
            texts.append(form.format(q=intents[int(rng.integers(len(intents)))]))
        else:
            form = OBJECT_PHRASINGS[int(rng.integers(len(OBJECT_PHRASINGS)))]
            texts.append(form.format(o=objects[int(rng.integers(len(objects)))]))
    return texts


def jsonl_lines(texts: Sequence[str], text_field: str = "query") -> str:
    """The texts as the JSONL lines the drift probe tails (one object per line)."""
    return "".join(json.dumps({text_field: t}, ensure_ascii=False) + "\n" for t in texts)


def append_jsonl(path: Path, texts: Sequence[str], text_field: str = "query") -> None:
    """Append the texts to a tailed JSONL file in one write, whole lines only."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(jsonl_lines(texts, text_field))
        fh.flush()


def post(url: str, texts: Sequence[str], token: str | None = None,
         timeout: float = 30.0) -> dict[str, Any]:
    """POST the texts to a drift probe's ingest endpoint (``http://127.0.0.1:PORT/ingest/
    <probe>``) as ``{"texts": [...]}``; returns the endpoint's JSON answer."""
    body = json.dumps({"texts": list(texts)}).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        answer: dict[str, Any] = json.loads(response.read() or b"{}")
    return answer


def window(data_dir: Path, n: int, seed: int, shift: bool = False, share: float = 0.7,
           toward: str | Sequence[str] = "ml-training", file: str = "traffic.jsonl") -> None:
    """One window of the demo's traffic appended to ``data_dir/<file>``: the healthy mix
    of the golden set in ``data_dir``, or with ``shift``, ``share`` of it moved ``toward``
    poorly covered topics."""
    golden = data_dir / "golden.jsonl"
    golden = golden if golden.exists() else demo_golden_path()
    mix = healthy_mix(golden)
    if shift:
        mix = shifted(mix, toward, share)
    append_jsonl(data_dir / file, generate(n, mix, seed, golden))
