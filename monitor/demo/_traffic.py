"""Query traffic for the demo's drift probe until the topic-mix generator is in place:
paraphrases of the golden questions (what users of the standard-library docs ask), and a
shifted mix in which most questions are about model training on GPUs, which the docs barely
cover."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

_FORMS = ("{q}", "{q}?", "how can I {q}", "{q} in python", "python: {q}", "quick question, {q}")
_SHIFT_TASKS = ("fine-tune", "train", "quantize", "distill", "profile", "serve", "shard",
                "checkpoint", "evaluate", "deploy")
_SHIFT_THINGS = ("a transformer model on two GPUs", "a LoRA adapter with mixed precision",
                 "a llama model with flash attention", "a diffusion model on CUDA",
                 "an embedding model with a contrastive loss", "a model in bfloat16 on an A100",
                 "a vision transformer with gradient accumulation",
                 "a mixture-of-experts model across nodes")


def golden_questions(golden: Path) -> list[str]:
    return [json.loads(line)["query"] for line in golden.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("//") and "query" in json.loads(line)]


def healthy(golden: Path, n: int, rng: np.random.Generator) -> list[str]:
    qs = golden_questions(golden)
    return [_FORMS[rng.integers(len(_FORMS))].format(q=qs[rng.integers(len(qs))].rstrip("?"))
            for _ in range(n)]


def shifted(golden: Path, n: int, rng: np.random.Generator, share: float = 0.7) -> list[str]:
    out = healthy(golden, n, rng)
    for i in rng.choice(n, size=round(share * n), replace=False):
        task = _SHIFT_TASKS[rng.integers(len(_SHIFT_TASKS))]
        thing = _SHIFT_THINGS[rng.integers(len(_SHIFT_THINGS))]
        out[i] = _FORMS[rng.integers(len(_FORMS))].format(q=f"{task} {thing}")
    return out


def append(path: Path, texts: list[str]) -> None:
    """Append queries as the app would: one JSON object per line, flushed whole."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps({"query": t}) + "\n" for t in texts))


def window(data_dir: Path, n: int, seed: int, shift: bool = False, **_: Any) -> None:
    golden, traffic = data_dir / "golden.jsonl", data_dir / "traffic.jsonl"
    rng = np.random.default_rng(seed)
    append(traffic, shifted(golden, n, rng) if shift else healthy(golden, n, rng))
