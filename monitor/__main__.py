"""``python -m ragmon.monitor`` and the ``ragmon`` console script.

The entry point imports almost nothing before it installs SIGTERM/SIGINT handlers for
``ragmon run``: a daemon asked to stop while it is still importing (a second or more) exits
0 at once, as a stop at any later moment does (``Daemon.serve_forever`` installs the real
handlers before it starts anything). Then it hands over to the composition root.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _stop_during_start_up(signum: int, _frame: FrameType | None) -> None:
    os._exit(0)  # nothing has started yet: no run to finish, nothing to store


def main() -> int:
    if sys.argv[1:2] == ["run"]:
        signal.signal(signal.SIGTERM, _stop_during_start_up)
        signal.signal(signal.SIGINT, _stop_during_start_up)
        # SIGHUP (reload) would end the process by default; the config is read after this.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from ragmon.monitor.app import main as run_cli

    return run_cli()


if __name__ == "__main__":
    raise SystemExit(main())
