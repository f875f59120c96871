"""The drift summary `ragmon probe NAME --once` prints: verdict per method, the alarm,
coverage, and the clusters that moved with example texts (the explanation)."""

from __future__ import annotations

from typing import Any

from ragmon.monitor.probe import ProbeResult


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _method_table(methods: dict[str, Any]) -> list[str]:
    """One row per method; each column as wide as its widest cell, two spaces apart, so a
    long value (``1.982e-141``) never runs into its neighbour."""
    header = ("method", "statistic", "p-value", "differs", "alarm")
    right = (False, True, True, False, False)
    entries: list[tuple[str, ...] | str] = []  # a row of cells, or a method's note
    for method, m in methods.items():
        if m.get("verdict") == "insufficient data":
            entries.append(f"  {method}  {m.get('message')}")
            continue
        entries.append((method, _fmt(m.get("statistic")), _fmt(m.get("p_value")),
                        "yes" if m.get("drifted") else "no",
                        "on" if m.get("alarm") else "off" if m.get("decides", True) else "-"))
    rows = [header, *(e for e in entries if isinstance(e, tuple))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(cells: tuple[str, ...] | str) -> str:
        if isinstance(cells, str):
            return cells
        return "  " + "  ".join(c.rjust(w) if r else c.ljust(w)
                                for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    return [line(header), *map(line, entries)]


def _kernel_line(mmd: dict[str, Any]) -> str | None:
    """Which kernel computed MMD²: exact up to ``max_exact`` pooled rows (10,000 per side by
    default), random Fourier features above, whose statistic is an approximation."""
    kernel = mmd.get("kernel")
    if kernel is None:
        return None
    pooled = int(mmd.get("n_reference", 0)) + int(mmd.get("n_current", 0))
    limit = mmd.get("max_exact")
    if kernel == "rff":
        return (f"  mmd kernel: rff, {int(mmd.get('rff_features', 0)):,} random Fourier features "
                f"({pooled:,} pooled rows > max_exact {limit:,}; the statistic approximates "
                "the exact one)")
    bound = f" <= max_exact {limit:,}" if limit is not None else ""
    return f"  mmd kernel: exact ({pooled:,} pooled rows{bound})"


def _decider_line(d: dict[str, Any]) -> str:
    """Which method decides (one false-alarm budget per probe) and what it is judged by."""
    null = (d.get("calibration") or {}).get("conditional")
    filling = d.get("pool_filling")
    judged = (f"against this reference's own null ({null['null_draws']} windows from a "
              f"holdout of {null['holdout_rows']} rows)" if null else
              "against a fresh-reference null: uncalibrated for this reference while its "
              f"pool fills ({filling['have']} of {filling['need']} rows)" if filling else
              f"against a fresh-reference null: reference {d['legacy_reference']} was pinned "
              "before per-reference calibration; capture a new one with `ragmon baseline "
              "capture`" if d.get("legacy_reference") else
              "against a fresh-reference null")
    return (f"  decided by {d.get('decided_by', '?')}, {judged}; the other methods explain "
            "and never page")


def render_result(name: str, result: ProbeResult) -> str:
    d = result.details
    head = f"drift {name} ({d.get('source', '?')}): {result.status}"
    if result.error:
        return f"{head}\n  error: {result.error}"
    verdict = d.get("verdict")
    if verdict == "insufficient data":
        return f"{head}\n  {d.get('message')}; no statistic computed"
    if verdict == "reference captured":
        return (f"{head}\n  reference captured from {d.get('n_current')} rows "
                f"(id {d.get('reference_id')}); later runs compare against it")
    cal = d.get("calibration", {})
    lines = [
        head,
        f"  windows: current {d.get('n_current')} rows vs reference {d.get('n_reference')} "
        f"(id {d.get('reference_id')}, {'pinned' if d.get('reference_pinned') else 'rolling'})",
        f"  per-window alpha {_fmt(cal.get('alpha'))} ({cal.get('rule')}"
        + (f" {cal.get('k')} of {cal.get('n')}" if cal.get("rule") == "k_of_n" else "")
        + f"); DRIFT: {'yes' if d.get('drifted') else 'no'}; "
        f"ALARM: {'on' if d.get('alarm') else 'off'}",
        _decider_line(d),
    ]
    methods: dict[str, Any] = d.get("methods", {})
    lines += _method_table(methods)
    kernel = _kernel_line(methods.get("mmd", {}).get("details", {}))
    if kernel:
        lines.append(kernel)
    cov = methods.get("coverage")
    if cov:
        lines.append(
            f"  coverage: {cov['statistic']:.1%} of queries beyond the reference's "
            f"{cov['details']['quantile']:.0%} nearest-neighbour distance "
            f"({cov['details']['bar']:.3f}); expected {cov['threshold']:.0%}"
        )
        if cov.get("drifted"):  # the gap is significant: say what users asked that is missing
            lines += [f"    outside coverage: \"{e['text'][:80]}\""
                      for e in cov["details"].get("examples", [])[:3]]
    clusters = methods.get("clusters", {}).get("details", {})
    for direction, word in (("grew", "grew"), ("shrank", "shrank")):
        for entry in clusters.get(direction, [])[:3]:
            lines.append(
                f"  cluster {entry['cluster']} {word}: {entry['reference_share']:.1%} -> "
                f"{entry['current_share']:.1%}"
                + (f"  (like: {entry['label'][:70]!r})" if entry.get("label") else "")
            )
            for ex in entry.get("examples", []):
                text = ex.get("text") or ex.get("id") or f"row {ex.get('row')}"
                lines.append(f"      - {str(text)[:100]}")
    return "\n".join(lines)
