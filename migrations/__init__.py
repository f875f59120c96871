"""Alembic migrations for the ragmon store. Shipped inside the wheel so an installed
daemon can migrate from any working directory (see monitor.store.migrate)."""
