"""Email addresses in the config (the alert email sink, the weekly report): a malformed one
is a config error at load that names the key and the value, not a failed send later."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from ragmon.monitor.config import config_error

#: ``Display Name <address>``: the display name has no angle brackets.
_NAMED = re.compile(r"\s*[^<>]*<([^<>]*)>\s*")


def _address(value: str) -> str:
    """``team@example.org`` or ``Search team <team@example.org>``; syntax only (no DNS)."""
    from email_validator import EmailNotValidError, validate_email

    named = _NAMED.fullmatch(value)
    address = named.group(1) if named else value.strip()
    try:
        if "<" in address or ">" in address:
            raise EmailNotValidError("write name@domain, or Name <name@domain>")
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise config_error("email_address", "not an email address ({reason})",
                           {"reason": str(exc).rstrip(".")}, echo_input=True) from None
    return value.strip()


EmailAddress = Annotated[str, AfterValidator(_address)]
