"""The probe kinds: canary (``canary.py``), recall (``recall/``) and drift (``drift/``),
and the reference samples the canary and drift share (``references.py``).

Each kind is a :class:`~ragmon.monitor.probe.Probe` subclass; the composition root
(``ragmon.monitor.app``) registers them. Error messages list the valid kinds from there.
"""
