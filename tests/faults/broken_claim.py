"""`ragmon run` with the slot claim broken, for the mutation check of the shared schedule.

The test drops the unique constraint on (probe, instance, slot) from its database; without
it ``ON CONFLICT`` has nothing to conflict on, so the claim here is the plain INSERT that is
left: every replica's insert succeeds and every replica runs every slot. The sharing test's
assertions must then see duplicates.

Usage: python broken_claim.py run -c CONFIG
"""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

import ragmon.monitor.store as store_module
from ragmon.monitor.store.models import ProbeSlot

_insert_ignore = store_module.insert_ignore


def plain_insert(s: Session, model: type[Any], values: dict[str, Any], keys: list[str]) -> int:
    if model is not ProbeSlot:
        return _insert_ignore(s, model, values, keys)
    s.execute(insert(model).values(**values))
    return 1


store_module.insert_ignore = plain_insert  # type: ignore[assignment]

if __name__ == "__main__":
    from ragmon.monitor.__main__ import main

    sys.argv = ["ragmon", *sys.argv[1:]]
    raise SystemExit(main())
