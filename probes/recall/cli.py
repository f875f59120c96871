"""``ragmon baseline pin RUN_ID``: make a recall run the baseline its probe compares with.

Without a pin, a recall probe compares with its first healthy run of the current golden set
version. A pin replaces that (the newest pin wins) for the golden set version of the pinned
run; after an edit of the golden set, the first healthy run of the new version since the
pin takes over (docs/recall.md, "Baseline and comparison").
"""

from __future__ import annotations

import argparse

from ragmon.monitor.cli import CommandGroups, load


def cmd_pin(args: argparse.Namespace) -> int:
    from ragmon.monitor.store import Store
    from ragmon.probes.recall.history import pin_baseline

    config = load(args)
    store = Store(config.store.url.get_secret_value(), instance=config.deployment.name)
    try:
        store.migrate() if config.store.migrate_on_start else store.require_head()
        run = pin_baseline(store, args.run_id, args.note)
        print(f"run {run.id} (probe {run.probe!r}, golden set {run.golden_version}, "
              f"verdict {(run.details or {}).get('verdict')}) is now the baseline of "
              f"probe {run.probe!r}")
    finally:
        store.close()
    return 0


def add_commands(cli: CommandGroups) -> None:
    baseline = cli.group("baseline", "manage baselines")
    p = baseline.add_parser(
        "pin", help="pin a recall run as its probe's baseline",
        description="Pin a successful recall run as the baseline its probe compares with.",
    )
    p.add_argument("run_id", type=int, help="id of a stored recall run (printed by "
                   "`ragmon probe NAME --once`)")
    p.add_argument("--note", default=None, help="why this run is the baseline (kept with it)")
    cli.config_arg(p)
    p.set_defaults(func=cmd_pin)
