"""The real-text corpus of the drift calibration benchmark: MiniLM embeddings of the
stdlib docstrings the test suite uses (``DEFAULT_MODULES``), augmented with the
docstrings of more stdlib modules and of numpy, SQLAlchemy, SciPy and scikit-learn, so
that every reference, its calibration holdout and the live windows are disjoint samples
of one population. Embeddings are cached on disk (the first run embeds ~9,000 chunks)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGMON_CACHE_DIR", str(REPO / ".cache"))

EXTRA_MODULES: tuple[str, ...] = (
    "abc", "ast", "atexit", "bdb", "binascii", "builtins", "cProfile", "cmath", "cmd",
    "code", "codecs", "codeop", "colorsys", "compileall", "concurrent.futures",
    "contextvars", "copyreg", "ctypes", "dataclasses", "dbm", "dis", "doctest",
    "email.utils", "email.headerregistry", "errno", "faulthandler", "filecmp", "fileinput",
    "gc", "getopt", "graphlib", "html", "importlib", "importlib.metadata", "io", "keyword",
    "linecache", "marshal", "mmap", "modulefinder", "netrc", "numbers", "optparse", "pdb",
    "pickletools", "pkgutil", "plistlib", "posixpath", "profile", "pstats", "pty",
    "py_compile", "pyclbr", "pydoc", "quopri", "reprlib", "resource", "rlcompleter",
    "runpy", "sched", "select", "signal", "site", "socketserver", "stat", "stringprep",
    "symtable", "sys", "sysconfig", "tabnanny", "token", "tomllib", "trace", "tracemalloc",
    "tty", "types", "unicodedata", "unittest.mock", "webbrowser", "wsgiref.handlers",
    "xml.dom.minidom", "xmlrpc.client", "zipapp", "zipimport", "zoneinfo",
    "numpy", "sqlalchemy.orm", "scipy.optimize", "sklearn.linear_model",
)


def calibration_corpus() -> tuple[np.ndarray, np.ndarray]:
    """(vectors, topics) of the augmented corpus, one row per chunk."""
    from ragmon.monitor.demo.corpus import DEFAULT_MODULES, stdlib_corpus
    from ragmon.monitor.demo.embeddings import cached_encode
    from ragmon.monitor.embedders.sentence_transformers import (
        SentenceTransformerEmbedder,
        SentenceTransformersConfig,
    )

    chunks = stdlib_corpus(DEFAULT_MODULES + EXTRA_MODULES)
    embedder = SentenceTransformerEmbedder("minilm", SentenceTransformersConfig(
        kind="sentence-transformers", model="all-MiniLM-L6-v2"))
    vectors = np.asarray(cached_encode(embedder, [c.text for c in chunks]), np.float32)
    return vectors, np.array([c.topic for c in chunks])


if __name__ == "__main__":
    v, t = calibration_corpus()
    print(v.shape, int((t == "asyncio").sum()))
