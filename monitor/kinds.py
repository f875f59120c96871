"""One registry shape for every kind: probe kinds, vector targets, embedders, alert sinks
and drift methods.

A :class:`KindSpec` says what builds an implementation (``factory``), the typed model of
its parameters (``params``: a config entry's model, or a drift method's keyword
parameters), and the optional extra that provides its client, with the ``pip install``
line that fixes a missing one. A :class:`Registry` maps the config ``kind`` to its spec;
its error messages list the valid kinds.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, Union

from pydantic import BaseModel, Discriminator, Tag

from ragmon.monitor.config import KindConfig
from ragmon.monitor.errors import RagmonError

T = TypeVar("T", covariant=True)


@dataclass(frozen=True)
class KindSpec(Generic[T]):
    """One implementation of a kind.

    Attributes
    ----------
    name : str
        The ``kind`` users write in the config (or the drift method's name).
    factory : callable
        Builds the implementation; for config-built kinds it is called as
        ``factory(name, entry, ...)`` with the validated entry.
    params : type of pydantic model
        The typed parameters: the config entry's model (it declares ``kind``), or a drift
        method's keyword parameters. Strict, so a typo is a config error with its key path.
    extra : str or None
        The ``ragmon[extra]`` that installs the client, when it is optional.
    requires : tuple of str
        Modules that extra provides; one missing fails config loading with the pip line.
    """

    name: str
    factory: Callable[..., T]
    params: type[BaseModel]
    extra: str | None = None
    requires: tuple[str, ...] = ()

    def missing_modules(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


class UnknownKind(RagmonError):
    """A kind name that no registered spec has (only reachable past config validation)."""


class Registry(Mapping[str, KindSpec[T]]):
    """Specs of one kind by name; ``what`` names the kind in messages ("target")."""

    def __init__(self, what: str, specs: Iterable[KindSpec[T]]):
        self.what = what
        self._specs: dict[str, KindSpec[T]] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"two {what} kinds are named {spec.name!r}")
            self._specs[spec.name] = spec

    def __getitem__(self, name: str) -> KindSpec[T]:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownKind(
                f"unknown {self.what} kind {name!r}; valid kinds: {self.valid()}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def get(self, name: str, default: Any = None) -> Any:
        return self._specs.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def valid(self) -> str:
        return ", ".join(sorted(self._specs)) or "(none installed)"

    def build(self, kind: str, *args: Any, **kwargs: Any) -> T:
        """The implementation of ``kind``, built by its factory."""
        return self[kind].factory(*args, **kwargs)

    def missing_requirement(self, kind: str) -> str | None:
        """Why ``kind`` cannot be used on this install (with the pip line), or None."""
        spec = self[kind]
        missing = spec.missing_modules()
        if missing and spec.extra:
            return (
                f"{self.what} kind {kind!r} needs {', '.join(missing)}: "
                f"pip install 'ragmon[{spec.extra}]'"
            )
        return None

    def with_spec(self, spec: KindSpec[T]) -> Registry[T]:
        """A copy with one more spec (a test's own probe kind, a plugin's sink)."""
        return Registry(self.what, [*self._specs.values(), spec])

    def config_union(self) -> Any:
        """A tagged union of the specs' ``params`` models, picked by ``kind``; an unknown
        kind is an error that lists the valid ones."""
        valid = self.valid()

        def kind_of(value: Any) -> str | None:
            return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)

        members: list[Any] = [
            Annotated[spec.params, Tag(name)] for name, spec in sorted(self._specs.items())
        ]
        if not members:
            members = [Annotated[KindConfig, Tag("__none__")]]
        return Annotated[
            Union[tuple(members)],  # noqa: UP007 - a runtime-built union
            Discriminator(
                kind_of,
                custom_error_type="unknown_kind",
                custom_error_message=f"unknown {self.what} kind; valid kinds: {valid}",
                custom_error_context={"valid": valid, "what": self.what},
            ),
        ]


__all__ = ["KindSpec", "Registry", "UnknownKind"]
