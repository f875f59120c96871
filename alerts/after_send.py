"""Recording the outcome of a send that cannot be undone (an alert notification, a report).

Both are claimed with a lease before they are sent, and a send ends by half the lease after
its claim. Once the receiver has accepted, the outcome must be recorded before the lease
ends: a claim still open when it ends is taken over and sent again. A store that fails at
that moment (a lock held past the statement timeout, a dropped connection, a failover) is
therefore retried, with backoff, until three quarters of the lease; the last quarter is
margin for clock skew between replicas.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_WAIT = 0.5  # seconds before the first retry; doubled after each failure
LONGEST_WAIT = 10.0


def record_after_send(
    what: str,
    record: Callable[[], T],
    *,
    send_deadline: float,
    lease: float,
    log: logging.Logger,
    redact: Callable[[str], str],
) -> T | None:
    """Call ``record`` until it returns, retrying its failures until ``lease / 4`` after
    ``send_deadline`` (a ``time.monotonic()`` value, half the lease after the claim).

    Returns what ``record`` returned, or None when the store still failed at that bound
    (logged as an error: the claim's lease will end open and ``what`` may be sent again).
    ``what`` names the sent thing in the log lines; ``redact`` scrubs secrets from errors.
    """
    stop = send_deadline + lease / 4
    wait = FIRST_WAIT
    while True:
        try:
            return record()
        except Exception as exc:  # noqa: BLE001 - sent already: recorded if the store comes back
            error = redact(str(exc)) or type(exc).__name__
            if stop - time.monotonic() <= wait:
                log.error("%s: sent, but recording it failed (it may be sent again when its "
                          "claim ends): %s", what, error)
                return None
            log.warning("%s: sent, recording it failed; retrying in %gs: %s", what, wait, error)
        time.sleep(wait)
        wait = min(wait * 2, LONGEST_WAIT)
