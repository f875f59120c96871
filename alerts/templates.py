"""Summary and description templates (Jinja2, sandboxed).

Variables: ``rule``, ``probe``, ``kind``, ``target``, ``severity``, ``field``, ``value``,
``labels``, ``status`` (firing or resolved), ``since``, ``run`` (id, status, error,
started_at, finished_at), ``details`` (the run's details: verdict, evidence, regressed
queries, moved clusters), ``values`` (every value of the run, name -> list of
``{labels, value}``), and ready-made lines (:mod:`alerts.explain`): ``reasons`` (the first
reasons of the verdict), ``regressed`` (the worst regressed queries, ``id "text": recall@k
before -> after``, text cut), ``more_regressed`` (how many more regressed), ``series``
(``{k=10,mode=live}``), ``link`` (the alert's page) and, for a rule across instances
(``group_instances``), ``instances`` (``matched``: the instances that match, ``total``:
how many reported, ``instances``: their names). A detail the run did not produce
renders as empty text. The filter ``number`` writes a value as people read it.

A rule without ``summary`` or ``description`` gets the defaults below, chosen by what it
watches (``status``, a ``verdict``, or a value).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

from ragmon.alerts.explain import number

VARIABLES = (
    "rule", "probe", "kind", "target", "severity", "field", "value", "labels", "status",
    "since", "run", "details", "values", "reasons", "regressed", "more_regressed", "series",
    "link", "instances",
)

#: Default summaries: by what the rule watches.
SUMMARY_STATUS = ("{{ rule }}: probe {{ probe }} {{ run.status }}"
                  "{% if run.error %}: {{ run.error | truncate(300, true, '…', 0) }}{% endif %}")
SUMMARY_VERDICT = ("{{ rule }}: probe {{ probe }} verdict {{ value }}"
                   "{% if details.verdict_k %} (recall@{{ details.verdict_k }}){% endif %}")
SUMMARY_VALUE = ("{{ rule }}: probe {{ probe }} {{ field }}{{ series }} is {{ value | number }}"
                 "{% if details.verdict %} (verdict {{ details.verdict }}){% endif %}")
#: The default summary of a rule across instances (``group_instances``): how many match.
SUMMARY_GROUP = ("{{ rule }}: {{ instances.matched | length }} of {{ instances.total }} "
                 "instances of probe {{ probe }} match {{ field }}{{ series }}"
                 "{% if instances.matched %} ({{ instances.matched | join(', ') }}){% endif %}")
#: The default description of a rule across instances: which match, of how many (the run
#: that triggered the evaluation may be any instance's, so its verdict is not told).
DESCRIPTION_GROUP = """\
{{ rule }} is {{ status }} for probe {{ probe }}{% if target %} on target "{{ target }}"\
{% endif %}: {{ instances.matched | length }} of {{ instances.total }} instances match \
{{ field }}{{ series }}{% if instances.matched %} ({{ instances.matched | join(', ') }})\
{% endif %}.{% if link %}
{{ link }}{% endif %}"""
#: The default description, for every rule: the value, the verdict and its first reasons,
#: the error of a failed run, the worst regressed queries, and the link.
DESCRIPTION = """\
{{ rule }} is {{ status }} for probe {{ probe }}{% if target %} on target "{{ target }}"\
{% endif %}: {{ field }}{{ series }} is {{ value | number }}.
{% if run.error %}Run {{ run.id }} {{ run.status }}: {{ run.error }}
{% endif %}{% if details.verdict %}Verdict: {{ details.verdict }}\
{% if details.verdict_k %} (decided at recall@{{ details.verdict_k }}){% endif %}.
{% endif %}{% for r in reasons %}- {{ r }}
{% endfor %}{% if regressed %}Top regressed queries:
{% for q in regressed %}- {{ q }}
{% endfor %}{% if more_regressed %}({{ more_regressed }} more)
{% endif %}{% endif %}{% if run.id is not none %}Run {{ run.id }}{% if link %}: {{ link }}\
{% endif %}{% endif %}"""


def default_summary(watched: str, verdict_rule: bool) -> str:
    """The summary template of a rule that sets none."""
    if verdict_rule:
        return SUMMARY_VERDICT
    return SUMMARY_STATUS if watched == "status" else SUMMARY_VALUE


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
    env.filters["number"] = number
    return env


def sample_context() -> dict[str, Any]:
    """Plausible values for every variable, to try a template at config load."""
    return {
        "rule": "RagmonExample", "probe": "docs-recall", "kind": "recall", "target": "docs",
        "severity": "warning", "field": "recall_ratio", "value": 0.5,
        "labels": {"alertname": "RagmonExample", "probe": "docs-recall"},
        "status": "firing", "since": "2026-01-01T00:00:00+00:00",
        "run": {"id": 1, "status": "ok", "error": None,
                "started_at": "2026-01-01T00:00:00+00:00",
                "finished_at": "2026-01-01T00:00:01+00:00"},
        "details": {}, "values": {}, "reasons": [], "regressed": [], "more_regressed": 0,
        "series": "{k=10,mode=live}", "link": "",
        "instances": {"matched": ["pod-a"], "total": 3, "instances": ["pod-a", "pod-b", "pod-c"]},
    }


def check_template(source: str) -> str | None:
    """Why ``source`` cannot be rendered, or None when it can."""
    env = environment()
    try:
        unknown = sorted(meta.find_undeclared_variables(env.parse(source)) - set(VARIABLES))
    except TemplateError as exc:
        return f"{type(exc).__name__}: {exc}"
    if unknown:
        return f"unknown variable {unknown[0]!r}; available: {', '.join(VARIABLES)}"
    try:
        env.from_string(source).render(sample_context())
    except UndefinedError:
        return None  # depends on details only a real run has
    except Exception as exc:  # noqa: BLE001 - any failure of a user template is reported
        return f"{type(exc).__name__}: {exc}"
    return None


def render(source: str, context: dict[str, Any]) -> str:
    """Render a checked template; a failure on real data keeps the text and says why."""
    try:
        return environment().from_string(source).render(context)
    except Exception as exc:  # noqa: BLE001 - a notification is better than none
        return f"{source} (template failed: {type(exc).__name__}: {exc})"
