"""Config loading: every bad input gives an exact message naming file and key, all at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ragmon.monitor.app import load_config
from ragmon.monitor.config import parse_duration
from ragmon.monitor.errors import ConfigError

GOOD = """
embedders:
  minilm: {kind: sentence-transformers, model: all-MiniLM-L6-v2}
probes:
  canary: {kind: canary, embedder: minilm, every: 1m, timeout: 30s}
"""


def write(tmp_path: Path, text: str, name: str = "ragmon.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return [str(i) for i in info.value.issues]


BAD_CONFIGS = [
    ("yaml syntax", "probes:\n  c: [kind: canary\n", ["{f}:3:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"]),
    ("duplicate key", GOOD + "probes: {}\n", ["{f}:6:1: YAML syntax error: duplicate key 'probes'"]),
    ("unknown key", GOOD + "store: {urll: sqlite:///x.db}\n",
     ["{f}: store.urll: unknown key; valid keys: max_overflow, migrate_on_start, pool_size, pool_timeout, retention, retention_at_start, retention_interval, statement_timeout, url"]),
    ("unknown probe key", GOOD.replace("timeout: 30s", "timeout: 30s, treshold: 0.9"),
     ["{f}: probes.canary.treshold: unknown key; valid keys: cron, embedder, every, jitter, kind, "
      "misfire_grace, norm_tolerance, texts, threshold, timeout"]),
    ("wrong type", GOOD.replace("timeout: 30s", "timeout: 30s, threshold: high"),
     ["{f}: probes.canary.threshold: Input should be a valid number, unable to parse string as a "
      "number, got 'high'"]),
    ("dangling reference", GOOD.replace("embedder: minilm, every", "embedder: mini, every"),
     ["{f}: probes.canary.embedder: unknown embedder 'mini'; valid: minilm"]),
    ("unknown kind", GOOD.replace("kind: canary", "kind: canery"),
     ["{f}: probes.canary: unknown probe kind 'canery'; valid kinds: canary, drift, recall"]),
    ("bad schedule", GOOD.replace("every: 1m", "cron: '61 * * * *'"),
     ["{f}: probes.canary.cron: '61 * * * *' is not a cron expression (Error validating expression "
      "'61': the last value (61) is higher than the maximum value (59))"]),
    ("both schedules", GOOD.replace("every: 1m", "every: 1m, cron: '* * * * *'"),
     ["{f}: probes.canary: give either 'every' or 'cron', not both"]),
    ("duration that is a list", GOOD.replace("every: 1m", "every: [1, m]"),
     ["{f}: probes.canary.every: durations are strings with a unit, like '30s', '15m' or '1h', "
      "or a number of seconds; got [1, 'm']"]),
    ("store url not a url", GOOD + "store: {url: notaurl}\n",
     ["{f}: store.url: not a database URL; use sqlite:///PATH or postgresql://USER@HOST/DB"]),
    ("store url of another database", GOOD + "store: {url: 'mysql://u:pw-9@h/db'}\n",
     ["{f}: store.url: ragmon keeps history in SQLite or PostgreSQL, not 'mysql'; use "
      "sqlite:///PATH or postgresql://USER@HOST/DB"]),
    ("negative timeout", GOOD.replace("timeout: 30s", "timeout: -5s"),
     ["{f}: probes.canary.timeout: must be a positive duration, like '30s', got '-5s'"]),
    ("missing model path", GOOD.replace("model: all-MiniLM-L6-v2", "model: ./models/nope"),
     ["{f}: embedders.minilm.model: model path '{d}/models/nope' is not a sentence-transformers "
      "model directory; give a local model directory (nothing is downloaded) or "
      "'all-MiniLM-L6-v2' for the bundled model"]),
    ("store directory missing", GOOD + "store: {url: 'sqlite:///no/such/dir/ragmon.db'}\n",
     ["{f}: store.url: directory '{d}/no/such/dir' for the SQLite store does not exist; create it "
      "or change store.url"]),
    ("secret file missing", GOOD + "store: {url: {file: secrets/db-url}}\n",
     ["{f}: store.url: secret file '{d}/secrets/db-url' cannot be read (No such file or directory); "
      "mount it or fix the path"]),
    ("secret env missing", GOOD + "store: {url: {env: NO_SUCH_VARIABLE_X}}\n",
     ["{f}: store.url: environment variable 'NO_SUCH_VARIABLE_X' is not set; export it or use "
      "{{file: PATH}}"]),
    ("bad listen", GOOD + "server: {listen: 'localhost'}\n",
     ["{f}: server.listen: 'localhost' is not HOST:PORT, like '0.0.0.0:9464'"]),
    ("missing kind", GOOD + "targets: {docs: {embedder: minilm}}\n",
     ["{f}: targets.docs: 'kind' is missing; valid kinds: {targets}"]),
    ("top level not a mapping", "- a\n- b\n", ["{f}: the top level must be a mapping of sections"]),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_message_is_pinned(tmp_path: Path, case: str, text: str, expected: list[str]) -> None:
    from ragmon.monitor.targets import TARGET_KINDS

    path = write(tmp_path, text)
    targets = ", ".join(sorted(TARGET_KINDS)) or "(none installed)"
    want = [e.format(f=path, d=tmp_path, targets=targets) for e in expected]
    assert errors_of(path) == want


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("timeout: 30s", "timeout: -1s, colour: red")
                 .replace("embedder: minilm, every", "embedder: nope, every")
                 + "server: {listen: x}\n")
    errors = errors_of(path)
    assert len(errors) == 4
    assert any("probes.canary.timeout" in e for e in errors)
    assert any("probes.canary.colour: unknown key" in e for e in errors)
    assert any("probes.canary.embedder: unknown embedder 'nope'" in e for e in errors)
    assert any("server.listen" in e for e in errors)


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", GOOD + "store: {url: 'sqlite:///data.db'}\n")
    monkeypatch.chdir("/")
    config = load_config(path, environ={})
    assert config.store.url.get_secret_value() == f"sqlite:///{tmp_path / 'conf' / 'data.db'}"


def test_environment_overrides_nested_keys(tmp_path: Path) -> None:
    text = GOOD.replace("canary:", "docs-canary:")
    path = write(tmp_path, text)
    config = load_config(path, environ={
        "RAGMON_PROBES__DOCS_CANARY__EVERY": "2m",
        "RAGMON_SERVER__LISTEN": "0.0.0.0:9999",
        "RAGMON_CONFIG": "ignored: not an override (no section separator)",
    })
    assert config.probes["docs-canary"].every == 120.0
    assert config.server.port == 9999


def test_environment_override_errors_name_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    errors = errors_of(path, {"RAGMON_PROBES__CANARY__TIMEOUT": "soon"})
    assert errors == [
        f"{path} (from RAGMON_PROBES__CANARY__TIMEOUT): probes.canary.timeout: 'soon' is not a "
        "duration; use a number and a unit (ms, s, m, h, d, w), like '30s'"
    ]


def test_secrets_from_env_and_file_never_echo(tmp_path: Path) -> None:
    (tmp_path / "db-url").write_text("sqlite:///" + str(tmp_path / "s.db") + "\n")
    path = write(tmp_path, GOOD + "store: {url: {file: db-url}}\n")
    config = load_config(path, environ={})
    assert config.store.url.get_secret_value() == f"sqlite:///{tmp_path / 's.db'}"
    assert "s.db" not in repr(config.store)
    bad = write(tmp_path, GOOD + "store: {url: 12345}\n", "bad.yaml")
    (err,) = errors_of(bad)
    assert "12345" not in err and "store.url" in err


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("7d") == 7 * 86400.0


def test_example_config_is_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    config = load_config(repo / "examples" / "ragmon.yaml", environ={})
    assert "canary" in config.probes


def test_check_config_cli_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD, "good.yaml")
    bad = write(tmp_path, GOOD.replace("every: 1m", "every: soon"), "bad.yaml")
    ok = subprocess.run([sys.executable, "-m", "monitor", "check-config", str(good)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{good}: OK"
    fail = subprocess.run([sys.executable, "-m", "monitor", "check-config", str(bad)],
                          capture_output=True, text=True)
    assert fail.returncode == 2
    assert "Traceback" not in fail.stderr
    assert f"error: {bad}: probes.canary.every: 'soon' is not a duration" in fail.stderr


def test_bad_config_leaves_stored_data_untouched(tmp_path: Path) -> None:
    from ragmon.monitor.store import Store

    db = tmp_path / "ragmon.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.close()
    before = db.read_bytes()
    bad = write(tmp_path, GOOD.replace("every: 1m", "every: -1m") + f"store: {{url: 'sqlite:///{db}'}}\n")
    for command in (["migrate", "-c", str(bad)], ["probe", "canary", "--once", "-c", str(bad)]):
        proc = subprocess.run([sys.executable, "-m", "monitor", *command], capture_output=True,
                              text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert db.read_bytes() == before


SECRET = "s3cr3t-never-shown-42"
BROKEN_AROUND_A_SECRET = [
    # model-level validators fail on the whole entry; the entry holds the literal secret
    ("drift index without target", {"probes": {"d": {
        "kind": "drift", "source": "index", "queries": {"token": SECRET}}}}),
    ("drift canary without texts", {"probes": {"d": {
        "kind": "drift", "source": "canary", "embedder": "m", "queries": {"token": SECRET}}}}),
    ("drift params for an unused method", {"probes": {"d": {
        "kind": "drift", "source": "queries", "embedder": "m", "methods": ["mmd"],
        "method_params": {"norms": {}}, "queries": {"token": SECRET}}}}),
    ("qdrant with neither path nor url", {"targets": {"q": {
        "kind": "qdrant", "collection": "c", "api_key": SECRET}}}),
    ("chroma with both path and host", {"targets": {"c": {
        "kind": "chroma", "collection": "c", "path": ".", "host": "http://127.0.0.1:1",
        "headers": {"Authorization": SECRET}}}}),
    # field-level errors next to a secret
    ("pgvector with a bad table", {"targets": {"p": {
        "kind": "pgvector", "url": f"postgresql://u:{SECRET}@127.0.0.1/db", "table": "a b"}}}),
    ("webhook sink with a bad timeout", {"alerts": {"sinks": {"w": {
        "kind": "webhook", "url": f"http://127.0.0.1:1/{SECRET}", "hmac_secret": SECRET,
        "timeout": "soon"}}}}),
]


@pytest.mark.parametrize(("case", "sections"), BROKEN_AROUND_A_SECRET,
                         ids=[c[0] for c in BROKEN_AROUND_A_SECRET])
def test_no_config_error_echoes_a_secret(tmp_path: Path, case: str, sections: dict) -> None:
    """Errors of a whole entry (model validators) never quote their input; a new error type
    must say it may echo (``config_error(..., echo_input=True)``) before it does."""
    from ragmon.monitor.app import validate_raw

    raw = {"embedders": {"m": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}},
           **sections}
    with pytest.raises(ConfigError) as info:
        validate_raw(raw, "ragmon.yaml", tmp_path)
    text = str(info.value)
    assert text.startswith("ragmon.yaml: ")
    assert SECRET not in text


def test_a_duration_may_be_a_number_of_seconds(tmp_path: Path) -> None:
    """docs/config.md says so; `every: 30` used to be rejected."""
    config = load_config(write(tmp_path, GOOD.replace("every: 1m", "every: 30")), environ={})
    assert config.probes["canary"].every == 30.0
    config = load_config(write(tmp_path, GOOD.replace("every: 1m", "every: 2.5")), environ={})
    assert config.probes["canary"].every == 2.5


def test_an_override_that_is_not_yaml_names_the_variable_not_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert errors_of(path, {"RAGMON_SERVER__LISTEN": "[s3cret-unclosed"}) == [
        "environment variable RAGMON_SERVER__LISTEN: server.listen: the value is not valid "
        "YAML (expected ',' or ']', but got '<stream end>'); quote it, like "
        "RAGMON_SERVER__LISTEN='\"...\"'"]


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ragmon.yaml"
    path.write_bytes(GOOD.encode() + b"# caf\xe9\n")
    [error] = errors_of(path)
    assert error == f"{path}:6: the file is not UTF-8 (byte 0xe9 at offset {len(GOOD) + 5}); " \
                    "save it as UTF-8"


def _secret_paths(model: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths of every secret field in a config model, nested sections included."""
    import typing

    from pydantic import BaseModel, SecretStr

    found = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        args = {a for a in typing.get_args(field.annotation)} | {field.annotation}
        flat = set(args)
        for a in args:
            flat |= set(typing.get_args(a))
        if SecretStr in flat:
            found.append((*prefix, key))
        for a in flat:
            if isinstance(a, type) and issubclass(a, BaseModel):
                found += _secret_paths(a, (*prefix, key))
    return found


def _planted(paths: list[tuple[str, ...]], kind: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": kind, "no_such_key": 1}
    for path in paths:
        node = entry
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = SECRET
    return entry


def _kinded_sections() -> list[tuple[str, str, dict[str, Any]]]:
    from ragmon.monitor.app import default_plugins

    plugins = default_plugins()
    cases = []
    for section, registry in (("targets", plugins.targets), ("embedders", plugins.embedders),
                              ("probes", plugins.probes)):
        for kind, spec in registry.items():
            paths = _secret_paths(spec.params)
            if paths:
                cases.append((section, kind, _planted(paths, kind)))
    for kind, spec in plugins.other_kinds["sink"].items():
        paths = _secret_paths(spec.params)
        if paths:
            cases.append(("alerts.sinks", kind, _planted(paths, kind)))
    return cases


@pytest.mark.parametrize(("section", "kind", "entry"), _kinded_sections(),
                         ids=[f"{c[0]}:{c[1]}" for c in _kinded_sections()])
def test_every_secret_field_of_every_kind_stays_out_of_errors(
    tmp_path: Path, section: str, kind: str, entry: dict
) -> None:
    """A literal secret in every secret field of the kind, next to an unknown key and with
    required keys missing: the errors name keys, never the secret."""
    from ragmon.monitor.app import validate_raw

    raw: dict[str, Any] = {}
    node = raw
    for part in section.split("."):
        node = node.setdefault(part, {})
    node["x"] = entry
    with pytest.raises(ConfigError) as info:
        validate_raw(raw, "ragmon.yaml", tmp_path)
    assert "no_such_key: unknown key" in str(info.value)
    assert SECRET not in str(info.value)
