"""Canary probe: embed fixed texts and compare with their stored vectors.

A cosine below the threshold, or a change of vector norm, means the embedding pipeline
changed (model, version, normalisation, truncation), even at the same dimension. The first
run (or a run after the canary texts were edited) stores the reference.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ragmon.monitor.config import ProbeConfig
from ragmon.monitor.probe import Deadline, MetricSpec, Probe, ProbeResult
from ragmon.probes.references import fleet_reference, latest_reference, save_reference

# Short and long texts from unrelated topics; the long ones exceed 128 tokens, so a change
# of truncation length shows up too.
DEFAULT_CANARIES: tuple[str, ...] = (
    "How do I reset my password?",
    "The quarterly revenue grew by twelve percent compared with last year.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "What is the refund policy for annual subscriptions?",
    "The patient presented with a mild fever and a persistent dry cough.",
    "Kubernetes restarts a container when its liveness probe fails.",
    "Bake the bread at 220 degrees for thirty minutes until golden.",
    "The treaty was signed in 1648, ending the Thirty Years' War.",
    "Error 503: the upstream service is temporarily unavailable.",
    "Quelle est la capitale de l'Australie ?",
    (
        "Our service level agreement guarantees 99.9 percent monthly uptime for the managed "
        "database offering. Scheduled maintenance windows are announced at least seven days in "
        "advance and are excluded from the uptime calculation. If the monthly uptime falls "
        "below the guaranteed level, customers may request a service credit of ten percent of "
        "the monthly fee for each full hour of additional downtime, up to a maximum of half of "
        "the monthly fee. Requests must be submitted through the support portal within thirty "
        "days of the incident, and must include the affected instance identifiers, the time "
        "window of the outage in UTC, and any error messages observed by the application."
    ),
    (
        "To rotate the signing keys, first generate a new key pair with the command line tool, "
        "upload the public key to the key registry, and wait until every verifier has fetched "
        "the new key set, which normally takes one cache lifetime of fifteen minutes. Then "
        "switch the signer to the new private key and keep the old public key published for at "
        "least twenty four hours, so that tokens issued before the switch can still be "
        "verified until they expire. Finally remove the old key from the registry and record "
        "the rotation in the security change log together with the ticket number."
    ),
)


class CanaryConfig(ProbeConfig):
    kind: Literal["canary"]
    embedder: str
    """The embedder whose pipeline is watched."""
    texts: list[str] = Field(default_factory=lambda: list(DEFAULT_CANARIES), min_length=1)
    """Fixed texts embedded every run; default: a built-in set of 12 short and long texts on
    unrelated topics. Editing them captures a new reference."""
    threshold: float = Field(default=0.9999, gt=0.0, le=1.0)
    """A canary cosine to its reference below this means the pipeline changed."""
    norm_tolerance: float = Field(default=1e-3, gt=0.0)
    """A relative change of vector norm above this means the pipeline changed (normalisation)."""


def texts_digest(texts: list[str]) -> str:
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]


@dataclass
class CanaryCheck:
    """Canary vectors against their reference: changed, and why."""

    changed: bool
    cosine: np.ndarray | None = None
    deviation: np.ndarray | None = None
    message: str | None = None  # a dimension change: no cosine is defined

    @property
    def cosine_min(self) -> float | None:
        return None if self.cosine is None else float(self.cosine.min())


def compare_with_reference(cfg: CanaryConfig, reference: np.ndarray,
                           vectors: np.ndarray) -> CanaryCheck:
    """The canary's test, also run inline by a recall probe whose canary run is stale."""
    if reference.shape[1] != vectors.shape[1]:
        return CanaryCheck(True, message=(
            f"embedding dimension changed from {reference.shape[1]} to {vectors.shape[1]}: "
            "the embedding model was swapped"))
    ref_norm = np.linalg.norm(reference, axis=1)
    new_norm = np.linalg.norm(vectors, axis=1)
    cos = np.sum(reference * vectors, axis=1) / np.maximum(ref_norm * new_norm, 1e-30)
    deviation = np.abs(new_norm / np.maximum(ref_norm, 1e-30) - 1.0)
    changed = bool(cos.min() < cfg.threshold or deviation.max() > cfg.norm_tolerance)
    return CanaryCheck(changed, cos, deviation)


class CanaryProbe(Probe):
    kind = "canary"
    Config = CanaryConfig
    METRICS = {
        "canary_cosine_min": MetricSpec(
            "Lowest cosine of a canary text to its reference vector.", ("embedder",)),
        "canary_cosine_mean": MetricSpec(
            "Mean cosine of the canary texts to their reference vectors.", ("embedder",)),
        "canary_norm_deviation_max": MetricSpec(
            "Largest |norm/reference norm - 1| over the canary texts.", ("embedder",)),
        "canary_changed": MetricSpec(
            "1 when the embedding pipeline changed (cosine or norm moved, or dimension "
            "differs).", ("embedder",)),
        "canary_dimension": MetricSpec("Dimension of the canary embeddings.", ("embedder",)),
    }

    def run(self, deadline: Deadline) -> ProbeResult:
        cfg: CanaryConfig = self.config
        embedder = self.context.embedder(cfg.embedder)
        fingerprint = embedder.fingerprint_id()
        vectors = embedder.encode(list(cfg.texts))
        deadline.check("embedding")
        result = ProbeResult(embedder_fingerprint=fingerprint)
        result.add("canary_dimension", vectors.shape[1], embedder=cfg.embedder)
        store = self.context.store
        digest = texts_digest(list(cfg.texts))
        reference = latest_reference(store, self.name, "canary")
        fleet = None if reference is not None or not store.instance else \
            fleet_reference(store, self.name, "canary")  # a new pod: see fleet_reference
        if reference is None or reference.details.get("texts_digest") != digest:
            why = "first run" if reference is None else "canary texts changed"
            save_reference(store, 
                self.name, "canary", fingerprint, vectors, list(range(len(cfg.texts))),
                details={"texts_digest": digest, "fingerprint": embedder.fingerprint()},
            )
            if fleet is not None and fleet.details.get("texts_digest") == digest:
                result = self._compare(cfg, fleet, vectors, embedder.fingerprint(), result)
                result.details["reference_from_instance"] = fleet.instance
                return result
            result.details = {"reference": "captured", "reason": why}
            result.add("canary_changed", 0, embedder=cfg.embedder)
            return result
        return self._compare(cfg, reference, vectors, embedder.fingerprint(), result)

    def _compare(
        self, cfg: CanaryConfig, reference: Any, vectors: np.ndarray,
        fingerprint: dict[str, Any], result: ProbeResult,
    ) -> ProbeResult:
        old_fp = reference.details.get("fingerprint", {})
        fp_diff = {k: [old_fp.get(k), v] for k, v in fingerprint.items() if old_fp.get(k) != v}
        result.details = {"reference_id": reference.id, "fingerprint_diff": fp_diff}
        check = compare_with_reference(cfg, reference.vectors, vectors)
        result.add("canary_changed", int(check.changed), embedder=cfg.embedder)
        if check.message is not None:
            result.details.update(verdict="dimension-changed", message=check.message)
            return result
        assert check.cosine is not None and check.deviation is not None
        result.add("canary_cosine_min", float(check.cosine.min()), embedder=cfg.embedder)
        result.add("canary_cosine_mean", float(check.cosine.mean()), embedder=cfg.embedder)
        result.add("canary_norm_deviation_max", float(check.deviation.max()),
                   embedder=cfg.embedder)
        worst = int(np.argmin(check.cosine))
        result.details.update(
            verdict="changed" if check.changed else "unchanged",
            worst_text=cfg.texts[worst][:120],
            worst_cosine=float(check.cosine[worst]),
            per_text_cosine=[round(float(c), 6) for c in check.cosine],
        )
        return result

    def render(self, result: ProbeResult) -> str:
        d = result.details
        head = f"canary {self.name}: {result.status}"
        if result.error:
            return f"{head}\n  error: {result.error}"
        if d.get("reference") == "captured":
            return (f"{head}\n  reference captured ({d.get('reason')}); later runs compare "
                    "against it")
        values = {n: v for n, _, v in result.values}
        lines = [head, f"  verdict: {d.get('verdict')}"]
        if d.get("reference_from_instance") is not None:
            lines.append(f"  compared with instance {d['reference_from_instance']!r}'s "
                         "reference (this instance had none); its own is kept from now on")
        if "message" in d:
            lines.append(f"  {d['message']}")
        if "canary_cosine_min" in values:
            lines.append(
                f"  cosine min {values['canary_cosine_min']:.6f}  mean "
                f"{values['canary_cosine_mean']:.6f}  (threshold {self.config.threshold})"
            )
            lines.append(f"  norm deviation max {values['canary_norm_deviation_max']:.2e}")
            lines.append(f"  worst text: {d.get('worst_text')!r}")
        if d.get("fingerprint_diff"):
            for key, (old, new) in d["fingerprint_diff"].items():
                lines.append(f"  fingerprint {key}: {old!r} -> {new!r}")
        return "\n".join(lines)
