"""A recall probe of a sidecar with no baseline of its own (a pod a rollout just created)
compares its first run with the fleet's baseline: a query pipeline the rollout changed is
the embedding on that first run, not the new pod's baseline. Real MiniLM, FAISS, runner."""

from __future__ import annotations

from ragmon.monitor.store import Store
from tests.probes.recall.conftest import Env


def as_pod(env: Env, instance: str) -> None:
    """The env's daemon becomes the sidecar of pod ``instance``."""
    env.store.close()
    env.store = Store(env.store_url, instance=instance)
    env.reload()


def test_a_new_pod_compares_with_the_fleets_baseline(env: Env) -> None:
    as_pod(env, "pod-a")
    old, old_id = env.run()
    assert old.details["verdict"] == "healthy", old.details["reasons"]
    assert old.details["reference_from_instance"] is None
    # The rollout replaces pod-a by pod-b, whose query pipeline truncates at 6 tokens.
    as_pod(env, "pod-b")
    env.embedder["max_seq_length"] = 6
    env.model = env.truncating_embedder(6)
    env.reload()
    new, _ = env.run()
    assert new.status == "ok", new.error
    assert new.details["verdict"] == "embedding", new.details["reasons"]
    assert new.details["reference_from_instance"] == "pod-a"
    assert new.details["baseline"]["run_id"] == old_id
