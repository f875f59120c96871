"""The demo's steps on a session: baselines, the healthy run, each scenario and its revert."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragmon.monitor.demo import table, traffic
from ragmon.monitor.demo.rot import Rot
from ragmon.monitor.demo.session import Run, Session

if TYPE_CHECKING:
    from ragmon.monitor.plugins import Plugins
    from ragmon.monitor.store import Store

DRIFT = "query-drift"
#: Reference windows at most (the pinned pool fills in 8 windows of the demo's config).
MAX_REFERENCE_WINDOWS = 16


class Flow:
    def __init__(self, data: Path, config_path: Path, plugins: Plugins,
                 environ: Mapping[str, str], store: Store, out: Any):
        self.data, self.out = data, out
        self.session = Session(config_path, plugins, environ, store)
        self.window_size = self._window_size()
        self.seed = int(time.time())
        self.current: Rot | None = None

    def _window_size(self) -> int:
        probe = self.session.config.probes.get(DRIFT)
        return int(getattr(probe, "window_size", 100))

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def run_probe(self, probe: str, shifted: bool = False) -> Run:
        if probe == DRIFT:
            self.seed += 1
            traffic.window(self.data, self.window_size, self.seed, shift=shifted)
        return self.session.run(probe)

    def round(self, shifted: bool = False, windows: int = 1,
              skip: tuple[str, ...] = ()) -> tuple[dict[str, Run], float]:
        """Every probe once (the drift probe ``windows`` times): the runs and their seconds."""
        runs: dict[str, Run] = {}
        for probe in self.session.probes():
            if probe in skip:
                continue
            for _ in range(windows if probe == DRIFT else 1):
                runs[probe] = self.run_probe(probe, shifted)
        return runs, sum(r.seconds for r in runs.values())

    def baselines(self) -> dict[str, Run]:
        self.say("\n1. Baselines: the canary's vectors, the recall baseline (the first healthy "
                 "run), and a reference window of the users' questions.")
        runs, _ = self.round()
        if DRIFT in runs:
            for n in range(MAX_REFERENCE_WINDOWS):
                details = runs[DRIFT].result.details
                if "pool_filling" not in details and details.get("verdict") == "compared":
                    break
                have = (details.get("pool_filling") or {}).get("have")
                self.say(f"   query reference: window {n + 1} stored"
                         + (f" ({have} questions pooled)" if have else ""))
                runs[DRIFT] = self.run_probe(DRIFT)
        return runs

    def healthy(self) -> dict[str, Run]:
        self.say("\n2. Healthy run: every probe once, nothing changed.")
        runs, _ = self.round()
        for probe, run in runs.items():
            self.say(f"   {probe}: {describe(run)}")
        if "docs-recall" in runs:
            self.say("\n" + table.meaning(runs["docs-recall"]))
        for line in table.drift_lines(runs.get(DRIFT)):
            self.say("   " + line)
        return runs

    def scenario(self, rot: Rot, before: dict[str, Run], n: int, of: int) -> table.Outcome:
        self.say(f"\n3.{n} of {of}: {rot.title} ({rot.change})")
        self.current = rot
        rot.apply(self.session, self.data)
        after, seconds = self.round(rot.shifted_traffic, rot.windows, rot.skip)
        alerts = self.session.firing()
        verdict = self.verdict_of(rot, after)
        detail = table.drift_lines(after.get(DRIFT)) if rot.watch == DRIFT or rot.key == "none" \
            else [f"   {r}" for r in (after["docs-recall"].result.details.get("reasons") or [])[:2]]
        for line in detail:
            self.say("   " + line.strip())
        runs = f"{rot.windows} windows" if rot.windows > 1 else "1 run"
        outcome = table.Outcome(rot, table.saw(rot.key, before, after), verdict, alerts,
                                f"{runs} ({seconds:.1f} s)" if alerts or rot.key == "none"
                                else "not detected", detail)
        self.say(f"   verdict: {verdict}; alert fired: {', '.join(alerts) or 'none'}")
        self.revert()
        return outcome

    def verdict_of(self, rot: Rot, after: dict[str, Run]) -> str:
        recall = after.get("docs-recall")
        drift = after.get(DRIFT)
        alarm = drift is not None and bool(drift.result.details.get("alarm"))
        if rot.watch == DRIFT:
            return "drift alarm" if alarm else "no drift"
        verdict = str(recall.result.details.get("verdict")) if recall else "-"
        return f"{verdict}, drift alarm" if alarm else verdict

    def revert(self, check: bool = True) -> None:
        """Undo the current scenario; with ``check``, run the probes until its alerts resolve
        (an interrupted demo only restores the files: its next start runs the probes)."""
        rot, self.current = self.current, None
        if rot is None:
            return
        rot.revert(self.session, self.data)
        if not check:
            return
        self.round(windows=rot.windows)
        firing = self.session.firing()
        self.say("   reverted; " + (f"still firing: {', '.join(firing)}" if firing
                                    else "every alert resolved"))

    def run(self, rots: list[Rot]) -> list[table.Outcome]:
        self.baselines()
        before = self.healthy()
        outcomes = []
        for n, rot in enumerate(rots, 1):
            outcomes.append(self.scenario(rot, before, n, len(rots)))
        return outcomes

    def close(self) -> None:
        self.session.close()


def describe(run: Run) -> str:
    r = run.result
    if r.status != "ok":
        return f"{r.status}: {r.error}"
    d = r.details
    if run.probe == "canary":
        cos = table.canary_cosine(run)
        return ("reference captured" if cos is None
                else f"embeddings unchanged (min cosine {cos:.4f})")
    if run.probe == "docs-recall":
        return (f"verdict {d.get('verdict')}, recall@10 {table._num(table.recall_at_k(run))}, "
                f"fidelity@10 {table._num(table.fidelity(run))}")
    if run.probe == DRIFT and d.get("verdict") == "compared":
        return "window compared with the reference"
    return str(d.get("verdict"))
