"""Bad windows give clear typed errors, never a p-value: too few rows, NaN rows, mixed
dimensions; and bad drift configs name the key and the valid choices."""

from __future__ import annotations

import numpy as np
import pytest

from ragmon.monitor.app import validate_raw
from ragmon.monitor.errors import ConfigError, DriftError, InsufficientData
from ragmon.probes.drift.methods import DRIFT_METHODS, coverage


@pytest.mark.parametrize("method", sorted(DRIFT_METHODS))
def test_too_few_rows(method) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InsufficientData) as info:
        DRIFT_METHODS.build(method, rng.normal(size=(100, 8)), rng.normal(size=(3, 8)))
    assert str(info.value) == "insufficient data: current window has 3 samples, 50 needed"
    assert (info.value.have, info.value.need) == (3, 50)


def test_nan_rows_are_named() -> None:
    x = np.ones((60, 4))
    y = np.ones((60, 4))
    y[[5, 17], 2] = np.nan
    with pytest.raises(DriftError, match=r"current window: 2 of 60 vectors contain NaN or Inf "
                                         r"\(rows \[5, 17\]\)"):
        DRIFT_METHODS.build("mmd", x, y)


def test_mixed_dimensions() -> None:
    with pytest.raises(DriftError, match="reference vectors have dimension 4 but current "
                                         "vectors have dimension 5"):
        DRIFT_METHODS.build("centroid", np.ones((60, 4)), np.ones((60, 5)))
    with pytest.raises(DriftError, match="must be a 2-D array"):
        DRIFT_METHODS.build("norms", np.ones(60), np.ones((60, 5)))


def test_coverage_bad_input() -> None:
    with pytest.raises(InsufficientData, match="current window has 5 samples, 20 needed"):
        coverage(np.ones(50), np.ones(5))
    with pytest.raises(DriftError, match="contain NaN"):
        coverage(np.ones(50), np.full(50, np.nan))


def config(probe: dict) -> dict:
    return {"embedders": {"m": {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}},
            "probes": {"d": {"kind": "drift", **probe}}}


@pytest.mark.parametrize(("probe", "message"), [
    ({"source": "queries", "embedder": "m", "methods": ["mmd", "wasserstein"]},
     "unknown drift method(s) 'wasserstein'; valid methods: centroid, classifier, clusters"),
    ({"source": "index"}, "source 'index' needs a 'target'"),
    ({"source": "canary", "embedder": "m"}, "source 'canary' needs 'texts'"),
    ({"source": "queries", "embedder": "m", "alarm": {"k": 4, "n": 3}},
     "k (4) must not exceed n (3)"),
    ({"source": "queries", "embedder": "m", "method_params": {"classifier": {}},
      "methods": ["mmd"]}, "method_params for methods not in 'methods': classifier"),
])
def test_bad_config_names_the_problem(tmp_path, probe, message) -> None:
    with pytest.raises(ConfigError) as info:
        validate_raw(config(probe), "ragmon.yaml", tmp_path, {})
    assert message in str(info.value)
    assert "probes.d" in str(info.value)


@pytest.mark.parametrize(("params", "message"), [
    ({"mmd": {"permutatons": 10}},
     "probes.d.method_params.mmd.permutatons: unknown key; valid keys: gamma, max_exact, "
     "permutations, rff_features"),
    ({"mmd": {"permutations": "many"}},
     "probes.d.method_params.mmd.permutations: Input should be a valid integer, unable to "
     "parse string as an integer, got 'many'"),
    ({"classifier": {"null": "bootstrap"}},
     "probes.d.method_params.classifier.null: Input should be 'mann-whitney' or 'permutation', "
     "got 'bootstrap'"),
    ({"wasserstein": {}},
     "probes.d.method_params.wasserstein: unknown key; valid keys: centroid, classifier, "
     "clusters, mmd, norms, pca_ks"),
])
def test_a_mistyped_method_parameter_is_a_config_error(tmp_path, params, message) -> None:
    """Before, ``{mmd: {permutatons: 10}}`` passed check-config and every run then failed
    with "mmd() got an unexpected keyword argument"."""
    probe = {"source": "queries", "embedder": "m", "methods": ["mmd", "classifier"],
             "method_params": params}
    with pytest.raises(ConfigError) as info:
        validate_raw(config(probe), "ragmon.yaml", tmp_path, {})
    assert [str(i) for i in info.value.issues] == [f"ragmon.yaml: {message}"]


def test_set_method_parameters_reach_the_method(tmp_path) -> None:
    probe = {"source": "queries", "embedder": "m", "method_params": {"mmd": {"permutations": 999}}}
    cfg = validate_raw(config(probe), "ragmon.yaml", tmp_path, {}).probes["d"]
    assert cfg.params_of("mmd") == {"permutations": 999}
    assert cfg.params_of("classifier") == {}


@pytest.mark.parametrize("name", sorted(DRIFT_METHODS))
def test_every_method_parameter_is_a_keyword_of_the_method(name: str) -> None:
    import inspect

    spec = DRIFT_METHODS[name]
    keywords = {p.name for p in inspect.signature(spec.factory).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    supplied_by_the_probe = {"alpha", "min_samples", "seed", "texts", "ids", "reference_texts"}
    assert set(spec.params.model_fields) == keywords - supplied_by_the_probe
