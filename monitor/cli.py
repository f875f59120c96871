"""The ``ragmon`` command line. ``main(argv, plugins)`` is called by the composition root
(``ragmon.monitor.app:main``, the console script), which passes the features' commands in."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ragmon.monitor import __version__
from ragmon.monitor.errors import ConfigError, RagmonError

if TYPE_CHECKING:
    from ragmon.monitor.config import RootConfig
    from ragmon.monitor.plugins import Plugins

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
DEFAULT_CONFIG = "ragmon.yaml"


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", default=os.environ.get("RAGMON_CONFIG", DEFAULT_CONFIG),
        help="config file (default: $RAGMON_CONFIG or ./ragmon.yaml)",
    )


def load(args: argparse.Namespace, path: str | None = None) -> RootConfig:
    """The config a command names (``--config``, or ``path``), validated against the plugins
    this command line was built with."""
    from ragmon.monitor.config import load_config

    return load_config(path or args.config, args.plugins)


def _setup_logging(config: RootConfig) -> None:
    from ragmon.monitor.logs import setup_logging

    setup_logging(config.logging.format, config.logging.level)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the config, then what can be checked offline in the files it names (the
    features' file checks); missing files are warnings, errors with ``--strict``."""
    config = load(args, args.file)
    issues = [issue for check in args.plugins.file_checks for issue in check(config)]
    warnings = [i for i in issues if i.warning and not args.strict]
    for issue in warnings:
        print(f"warning: {issue}", file=sys.stderr)
    errors = [i for i in issues if i not in warnings]
    if errors:
        raise ConfigError(errors)
    print(f"{args.file}: OK" + (f", {len(warnings)} warning(s)" if warnings else ""))
    return EXIT_OK


def cmd_version(args: argparse.Namespace) -> int:
    print(f"ragmon {__version__}")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from ragmon.monitor.store import Store
    from ragmon.monitor.store.migrate import head_revision

    config = load(args)
    store = Store(config.store.url.get_secret_value(), instance=config.deployment.name)
    before = store.revision()
    store.migrate(args.revision)
    print(f"store {store.safe_url}: schema {before or 'empty'} -> {store.revision()} "
          f"(head {head_revision()})")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from ragmon.monitor.daemon import Daemon

    config = load(args)
    _setup_logging(config)
    return Daemon(config, settle=True).serve_forever()


def cmd_probe(args: argparse.Namespace) -> int:
    from ragmon.monitor.context import ProbeContext
    from ragmon.monitor.runner import Runner
    from ragmon.monitor.store import Store

    config = load(args)
    if args.name not in config.probes:
        valid = ", ".join(sorted(config.probes)) or "none are configured"
        raise RagmonError(f"no probe named {args.name!r}; valid probes: {valid}")
    _setup_logging(config.model_copy(update={"logging": config.logging.model_copy(
        update={"level": "warning"})}))
    store = Store(config.store.url.get_secret_value(), instance=config.deployment.name)
    store.migrate() if config.store.migrate_on_start else store.require_head()
    from prometheus_client import CollectorRegistry

    context = ProbeContext(config, store, args.plugins)
    runner = Runner(context, CollectorRegistry(), args.plugins.probes)
    try:
        result, run_id = runner.run(args.name)
        print(runner.probes[args.name].render(result))
        if run_id is not None:
            print(f"(stored as run {run_id} in {store.safe_url})")
    finally:
        context.close()
        store.close()
    return EXIT_OK if result.status == "ok" else EXIT_FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    from ragmon.monitor.demo.run import run_demo

    return run_demo(args.data_dir, args.plugins, serve=args.serve, only=args.scenario)


def cmd_config_reference(args: argparse.Namespace) -> int:
    from ragmon.monitor.config.reference import render

    print(render(args.plugins), end="")
    return EXIT_OK


class CommandGroups:
    """What a command module gets: the top-level subparsers, shared command groups (two
    modules can both add to ``ragmon baseline``) and the standard ``--config`` option."""

    def __init__(self, sub: argparse._SubParsersAction):  # type: ignore[type-arg]
        self.sub = sub
        self._groups: dict[str, argparse._SubParsersAction] = {}  # type: ignore[type-arg]
        self.config_arg = _config_arg

    def group(self, name: str, help: str) -> argparse._SubParsersAction:  # type: ignore[type-arg]
        """The subparsers of ``ragmon NAME``, created on first use."""
        if name not in self._groups:
            parser = self.sub.add_parser(name, help=help, description=help)
            self._groups[name] = parser.add_subparsers(dest=f"{name}_command", required=True,
                                                       metavar="COMMAND")
        return self._groups[name]


def build_parser(plugins: Plugins) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragmon",
        description="Monitor the retrieval side of RAG systems: recall probes against the "
        "live vector index, embedding drift, alerts.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the daemon: scheduled probes, /metrics, /healthz, /readyz")
    _config_arg(p)
    p = add("probe", cmd_probe, "run one probe now, store the result and print a summary")
    p.add_argument("name", help="probe name from the config's 'probes' section")
    p.add_argument("--once", action="store_true", required=True,
                   help="run once and exit (use `ragmon run` for the schedule)")
    _config_arg(p)
    p = add("migrate", cmd_migrate, "upgrade the store's schema to this ragmon's head")
    p.add_argument("--revision", default="head", help="target revision (default: head)")
    _config_arg(p)
    p = add("check-config", cmd_check_config, "validate a config file and the files it names "
            "(golden sets parse, index files exist); print OK or every error")
    p.add_argument("file", help="config file to check")
    p.add_argument("--strict", action="store_true",
                   help="a file that does not exist yet is an error, not a warning")
    add("version", cmd_version, "print the ragmon version")
    p = add("demo", cmd_demo, "run ragmon on its embedded default: a FAISS index of real "
            "text, the bundled model and SQLite")
    p.add_argument("--data-dir", default=os.environ.get("RAGMON_DEMO_DIR", "ragmon-demo"),
                   help="where the demo keeps its index, config and store (default: ./ragmon-demo)")
    p.add_argument("--serve", action="store_true",
                   help="after the demo runs, keep the daemon running (Ctrl-C stops it)")
    p.add_argument("--scenario", action="append", metavar="NAME",
                   choices=("embedding", "index", "content", "topics", "none"),
                   help="run only this rot scenario (repeatable; default: all five)")
    add("config-reference", cmd_config_reference, "print the configuration reference "
        "(Markdown) of this install: every section and every installed kind")
    groups = CommandGroups(sub)
    for add_commands in plugins.commands:
        add_commands(groups)
    parser.set_defaults(plugins=plugins)
    return parser


def main(argv: Sequence[str] | None, plugins: Plugins) -> int:
    args = build_parser(plugins).parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        print(f"{len(exc.issues)} error(s) in the configuration", file=sys.stderr)
        return EXIT_CONFIG
    except RagmonError as exc:
        print(f"ragmon: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED

