"""The canary's word for a recall run, only when it speaks about the pipeline in use now.

A canary run is used when it succeeded, finished within two of its probe's intervals (plus
its jitter), and measured the embedder fingerprint this recall run embeds with. Otherwise
the recall run embeds the canary texts itself (it holds the embedder) and compares them
with the canary's stored reference, with the canary's own test; when that is impossible
(no reference yet, the canary texts were edited since, the canary watches another
embedder, the target embeds queries itself) canary evidence is unavailable and says why.
The evidence names what it used: the canary run (id and time) or the inline check, and the
run it passed over.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ragmon.monitor.store import Store
from ragmon.probes.canary import compare_with_reference, texts_digest
from ragmon.probes.references import latest_reference


def canary_names(probes: dict[str, Any], embedder: str | None, name: str | None) -> list[str]:
    """The canary probe named by the recall probe, else every canary of its embedder."""
    if name:
        return [name]
    return sorted(n for n, cfg in probes.items()
                  if cfg.kind == "canary" and getattr(cfg, "embedder", None) == embedder)


def canary_evidence(
    store: Store, probes: dict[str, Any], names: list[str], emb_name: str | None,
    emb_fp: str | None, embedder: Any, now: datetime | None = None,
) -> dict[str, Any] | None:
    """What the canary says about the current pipeline (None: no canary is configured)."""
    now = now or datetime.now(UTC)
    skipped: dict[str, Any] | None = None
    note = None
    for canary in names:
        run = _newest_ok(store, canary)
        if run is None:
            continue
        why = _unusable(run, probes.get(canary), emb_fp, now)
        if why is None:
            return _from_run(store, canary, run)
        if skipped is None or run.id > skipped["run_id"]:
            skipped = {"probe": canary, "run_id": run.id, "finished_at": _iso(run.finished_at)}
            note = f"canary run {run.id} of {canary!r} {why}"
    for canary in names:
        cfg = probes.get(canary)
        if cfg is None or getattr(cfg, "embedder", None) != emb_name or embedder is None:
            continue
        inline = _inline(store, canary, cfg, embedder)
        if inline is not None:
            inline.update(skipped_run=skipped, note=_join(note, "checked inline"))
            return inline
    if not names:
        return None
    return {"source": "unavailable", "probe": names[0], "changed": None,
            "skipped_run": skipped,
            "note": _join(note, "no canary result for the current pipeline, and no canary "
                                "reference this run can check against")}


def _newest_ok(store: Store, canary: str) -> Any:
    runs = store.runs(canary, limit=1, status="ok")
    return runs[0] if runs else None


def _unusable(run: Any, cfg: Any, emb_fp: str | None, now: datetime) -> str | None:
    """Why a canary run does not speak for this recall run (None: it does)."""
    if emb_fp is not None and run.embedder_fingerprint != emb_fp:
        return (f"measured another embedder fingerprint ({run.embedder_fingerprint}, now "
                f"{emb_fp})")
    if cfg is not None:
        max_age = 2 * cfg.interval + cfg.jitter
        age = (now - _aware(run.finished_at)).total_seconds()
        if age > max_age:
            return (f"finished {age:.0f}s ago, older than two intervals of the canary "
                    f"({timedelta(seconds=round(max_age))})")
    return None


def _from_run(store: Store, canary: str, run: Any) -> dict[str, Any]:
    values = {v.name: v.value for v in store.run_values(run.id)}
    return {
        "source": "run", "probe": canary, "run_id": run.id,
        "finished_at": _iso(run.finished_at),
        "changed": bool(values.get("canary_changed", 0.0)),
        "cosine_min": values.get("canary_cosine_min"),
        "verdict": (run.details or {}).get("verdict"),
    }


def _inline(store: Store, canary: str, cfg: Any, embedder: Any) -> dict[str, Any] | None:
    """The canary's test run here, against its stored reference (None: no usable one)."""
    reference = latest_reference(store, canary, "canary")
    if reference is None or reference.details.get("texts_digest") != texts_digest(cfg.texts):
        return None
    check = compare_with_reference(cfg, reference.vectors, embedder.encode(list(cfg.texts)))
    return {"source": "inline", "probe": canary, "reference_id": reference.id,
            "reference_captured_at": _iso(reference.created_at), "changed": check.changed,
            "cosine_min": check.cosine_min, "message": check.message}


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _iso(when: datetime) -> str:
    return _aware(when).isoformat()


def _join(first: str | None, second: str) -> str:
    return second if first is None else f"{first}; {second}"
