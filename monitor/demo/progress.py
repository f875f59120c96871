"""Progress of the demo's slow steps: a live bar with counts and an ETA on a terminal,
two plain lines (start, done in N s) when the output is a file or a pipe, so logs stay clean."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def is_terminal(out: Any) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def progress(out: Any, description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``: call it as each batch of ``n`` items is done."""
    started = time.monotonic()
    if not is_terminal(out):
        print(f"ragmon demo: {description} ...", file=out, flush=True)
        yield lambda n: None
        print(f"ragmon demo: {description}: done in {time.monotonic() - started:.1f} s",
              file=out, flush=True)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=out)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
