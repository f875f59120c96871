"""Tables of the alerts feature (added by their own migration). Imported by models.py so
Alembic and the model-vs-DDL test see one metadata."""

from __future__ import annotations

from monitor.store.models import Base  # noqa: F401
