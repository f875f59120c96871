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
        f"  {'method':<11}{'statistic':>11}{'p-value':>10}  differs  alarm",
    ]
    methods: dict[str, Any] = d.get("methods", {})
    for method, m in methods.items():
        if m.get("verdict") == "insufficient data":
            lines.append(f"  {method:<11}{m.get('message')}")
            continue
        lines.append(
            f"  {method:<11}{_fmt(m.get('statistic')):>11}{_fmt(m.get('p_value')):>10}  "
            f"{'yes' if m.get('drifted') else 'no':<7}  {'on' if m.get('alarm') else 'off'}"
        )
    cov = methods.get("coverage")
    if cov:
        lines.append(
            f"  coverage: {cov['statistic']:.1%} of queries beyond the reference's "
            f"{cov['details']['quantile']:.0%} nearest-neighbour distance "
            f"({cov['details']['bar']:.3f}); expected {cov['threshold']:.0%}"
        )
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
