"""``ragmon baseline capture PROBE``: store a drift probe's current window as its pinned
reference (float32 in SQL, with the embedder fingerprint, the time range and the size).
For query traffic a new window starts, so the next run compares later traffic."""

from __future__ import annotations

import argparse

from ragmon.monitor.cli import CommandGroups, load
from ragmon.monitor.config import RootConfig
from ragmon.monitor.errors import InsufficientData, RagmonError


def add_commands(cli: CommandGroups) -> None:
    baseline = cli.group("baseline", "manage baselines")
    p = baseline.add_parser(
        "capture", help="store a drift probe's current window as its pinned reference",
        description="Store the current window of a drift probe (query reservoir, an index "
        "sample or the canaries) as the pinned reference later windows are compared with.",
    )
    p.add_argument("probe", help="name of a drift probe in the config")
    cli.config_arg(p)
    p.set_defaults(func=cmd_capture)


def capture(config: RootConfig, probe_name: str) -> tuple[int, int, str]:
    """Capture the probe's current window; returns (reference id, rows, fingerprint)."""
    from ragmon.monitor.context import ProbeContext
    from ragmon.monitor.probe import Deadline
    from ragmon.monitor.store import Store
    from ragmon.probes.drift import state
    from ragmon.probes.drift.config import DriftConfig
    from ragmon.probes.drift.probe import DriftProbe

    cfg = config.probes.get(probe_name)
    if not isinstance(cfg, DriftConfig):
        valid = ", ".join(sorted(n for n, c in config.probes.items()
                                 if isinstance(c, DriftConfig)))
        raise RagmonError(f"no drift probe named {probe_name!r}; drift probes: "
                          f"{valid or 'none are configured'}")
    store = Store(config.store.url.get_secret_value(), instance=config.deployment.name)
    context = ProbeContext(config, store, config.plugins)
    try:
        store.migrate() if config.store.migrate_on_start else store.require_head()
        probe = DriftProbe(probe_name, cfg, context)
        window = probe.current_window(Deadline(float(cfg.timeout)))
        n = window.vectors.shape[0]
        if n < cfg.min_samples:
            raise InsufficientData(f"drift probe {probe_name!r} current window", n,
                                   cfg.min_samples)
        ref_id = probe.capture(window, pinned=True)
        if cfg.source == "queries":  # the next window is traffic after the reference
            state.reset_window(store, probe_name, window.end)
        return ref_id, n, window.fingerprint
    finally:
        context.close()
        store.close()


def cmd_capture(args: argparse.Namespace) -> int:
    ref_id, n, fingerprint = capture(load(args), args.probe)
    print(f"captured reference {ref_id} for drift probe {args.probe}: {n} rows, "
          f"embedder fingerprint {fingerprint}")
    return 0
