"""A real-text corpus every machine has offline: the docstrings of the Python standard library.

Docstrings are chunked the way a RAG ingestion pipeline would chunk documents (by
paragraph, up to ``max_chars``), each chunk keeps the dotted name of what it documents
as its document id and the module as its topic. For one Python version the corpus is
deterministic, and its modules give natural topic clusters (json, sqlite3, asyncio, ...).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

# Modules with rich docstrings and distinct topics. Importing them has no side effects.
DEFAULT_MODULES: tuple[str, ...] = (
    "argparse", "array", "asyncio", "base64", "bisect", "bz2", "calendar", "collections",
    "configparser", "contextlib", "copy", "csv", "datetime", "decimal", "difflib",
    "email.message", "enum", "fnmatch", "fractions", "ftplib", "functools", "getpass",
    "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html.parser", "http.client",
    "http.cookies", "imaplib", "inspect", "ipaddress", "itertools", "json", "locale",
    "logging", "lzma", "mailbox", "math", "mimetypes", "multiprocessing", "operator",
    "os", "pathlib", "pickle", "platform", "poplib", "pprint", "queue", "random", "re",
    "secrets", "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "sqlite3",
    "ssl", "statistics", "string", "struct", "subprocess", "tarfile", "tempfile",
    "textwrap", "threading", "time", "timeit", "tokenize", "traceback", "typing",
    "unittest", "urllib.parse", "urllib.request", "uuid", "warnings", "wave", "weakref",
    "xml.etree.ElementTree", "zipfile", "zlib",
)


@dataclass(frozen=True)
class Chunk:
    """One retrievable unit: ``id`` is unique, ``topic`` is the module it comes from."""

    id: str
    topic: str
    text: str


def _split(doc: str, max_chars: int) -> list[str]:
    paragraphs = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", doc)]
    chunks: list[str] = []
    current = ""
    for para in filter(None, paragraphs):
        if current and len(current) + len(para) + 1 > max_chars:
            chunks.append(current)
            current = ""
        current = f"{current} {para}".strip()
        while len(current) > max_chars:
            cut = current.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            chunks.append(current[:cut])
            current = current[cut:].strip()
    if current:
        chunks.append(current)
    return chunks


def _documented(module: object, modname: str) -> list[tuple[str, str]]:
    """(qualified name, docstring) for the module and its public classes, functions, methods."""
    found: list[tuple[str, str]] = []
    doc = getattr(module, "__doc__", None)
    if doc:
        found.append((modname, doc))
    for name, obj in sorted(vars(module).items()):
        owner = getattr(obj, "__module__", None) or ""
        if name.startswith("_") or not (owner == modname or owner.startswith(modname + ".")):
            continue
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        doc = inspect.getdoc(obj)
        if doc:
            found.append((f"{modname}.{name}", doc))
        if inspect.isclass(obj):
            for mname, member in sorted(vars(obj).items()):
                if mname.startswith("_") or not inspect.isroutine(member):
                    continue
                mdoc = member.__doc__
                if mdoc:
                    found.append((f"{modname}.{name}.{mname}", inspect.cleandoc(mdoc)))
    return found


@lru_cache(maxsize=8)
def stdlib_corpus(
    modules: tuple[str, ...] = DEFAULT_MODULES, max_chars: int = 600, min_chars: int = 40
) -> tuple[Chunk, ...]:
    """Chunk the docstrings of ``modules``; deterministic for a given Python version."""
    chunks: list[Chunk] = []
    seen_texts: set[str] = set()
    for modname in modules:
        # Importing a module, and reading docstrings of its deprecated attributes (typing.io,
        # typing.re), may warn; only the text is wanted here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(modname)
            documented = _documented(module, modname)
        for qualname, doc in documented:
            for i, text in enumerate(_split(doc, max_chars)):
                body = f"{qualname}: {text}"
                if len(text) < min_chars or body in seen_texts:
                    continue
                seen_texts.add(body)
                chunks.append(Chunk(id=f"{qualname}#{i}", topic=modname, text=body))
    return tuple(chunks)


def corpus_digest(chunks: tuple[Chunk, ...]) -> str:
    """A content hash of a corpus, for cache keys."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.id.encode())
        h.update(b"\0")
        h.update(c.text.encode())
        h.update(b"\0")
    return h.hexdigest()
