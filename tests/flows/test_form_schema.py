"""The parameter schema the flow exposes: what Prefect's UI renders as the run form, and what
the server validates a run's parameters with (no server, no browser: Prefect's own code)."""

import pytest
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools import ValidationError, validate

from spectral_core.params import PARAMETERS
from spectral_pipeline.flows.params import SpectralParams
from spectral_pipeline.flows.spectral import spectral_clustering


@pytest.fixture(scope="module")
def schema():
    return parameter_schema(spectral_clustering).model_dump_for_openapi()


def _fields(schema):
    """Every property the form renders: the flow's parameters and the dask options."""
    yield from schema["properties"].items()
    for definition in schema["definitions"].values():
        yield from definition["properties"].items()


def _subschemas(prop):
    yield prop
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in prop.get(key, []):
            yield from _subschemas(branch)


def test_no_field_is_a_null_branch_or_a_const(schema):
    # anyOf [X, {type: null}] opens on 'Property is type "None"' (the null default picks the
    # null branch); const renders 'is a const and cannot be changed'.
    for name, prop in _fields(schema):
        assert {"type": "null"} not in prop.get("anyOf", []), (name, prop)
        assert not any("const" in sub for sub in _subschemas(prop)), (name, prop)
        assert not isinstance(prop.get("type"), list), (name, prop)  # the UI has no case


def test_choices_with_none_are_one_dropdown(schema):
    assert schema["properties"]["eigen_solver"]["enum"] == ["arpack", "lobpcg", "amg", None]
    assert "type" not in schema["properties"]["eigen_solver"]  # a type would exclude None
    n_init = schema["properties"]["n_init"]["anyOf"]
    assert n_init[0] == {"type": "string", "enum": ["auto"]}, n_init


def test_descriptions_have_no_tags_and_state_every_range(schema):
    for name, prop in _fields(schema):
        text = prop.get("description", "")
        assert text and "<" not in text, (name, text)  # Markdown would eat '<name>'
        bounded = any(k in sub for sub in _subschemas(prop)
                      for k in ("minimum", "maximum", "exclusiveMinimum"))
        assert bounded == ("Range:" in text), (name, text)
    assert schema["properties"]["n_clusters"]["description"].endswith(
        "Range: ≥ 1, ≤ n_components.")
    assert schema["properties"]["gamma"]["description"].endswith("Range: > 0.")


def test_bounds_sit_where_the_uis_pre_submit_check_keeps_them(schema):
    # The UI maps the schema before /ui/schemas/validate and drops a top-level minimum; it
    # passes allOf and anyOf through untouched.
    for name, prop in _fields(schema):
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            assert key not in prop, (name, prop)


def _server_validate(schema, values):
    """As the server does before it creates a run (enforce_parameter_schema)."""
    validate(values, schema, raise_on_error=True)


UNTOUCHED = {"input": "data", "checkpoint_dir": None, "feature_columns": None,
             "id_column": None, "storage_options": None, "eigen_solver": None,
             "random_state": None, "n_init": "auto", "gamma": 1, "eigen_tol": 0,
             "kernel_params": None, "kmeans_params": None, "n_jobs": 1,
             "dask": {"address": None, "n_workers": 1, "threads_per_worker": 2,
                      "processes": False}}


@pytest.mark.parametrize("values", [
    UNTOUCHED,
    {"input": "data"},
    {"input": "data", "eigen_solver": "lobpcg", "n_init": 5, "eigen_tol": "auto",
     "gamma": None, "random_state": 7, "storage_options": {"anon": True},
     "feature_columns": ["a", "b"], "kernel_params": {"degree": 2}},
])
def test_the_server_accepts_what_the_form_and_the_api_send(schema, values):
    _server_validate(schema, values)


@pytest.mark.parametrize("bad", [
    {"gamma": -1.0}, {"gamma": 0}, {"affinity": "rbff"}, {"n_clusters": 0},
    {"n_init": 0}, {"n_init": "many"}, {"eigen_tol": -1}, {"eigen_tol": "fast"},
    {"eigen_solver": "lapack"}, {"random_state": -1}, {"storage_options": "anon"},
    {"feature_columns": "a"}, {"checkpoint_dir": 3}, {"block_size": 0},
    {"dask": {"n_workers": 0}},
])
def test_the_server_still_rejects_a_bad_value(schema, bad):
    with pytest.raises(ValidationError) as excinfo:
        _server_validate(schema, {"input": "data", **bad})
    assert next(iter(bad)) in str(excinfo.value)


def test_untouched_form_values_are_the_defaults():
    params = SpectralParams(**UNTOUCHED)
    for name, spec in PARAMETERS.items():
        assert getattr(params, name) == spec.default, name
    assert params.checkpoint_dir is None and params.id_column is None
    assert params.dask.address is None


def test_the_flow_accepts_what_it_accepted():
    # The schema is for the form; the flow's own validation (Python, the CLI) is the model's.
    ok = spectral_clustering.validate_parameters(
        {"input": "d", "eigen_solver": None, "n_init": "auto", "gamma": None,
         "random_state": None, "kernel_params": None})
    assert ok["eigen_solver"] is None and ok["n_init"] == "auto" and ok["gamma"] is None
    assert spectral_clustering.validate_parameters({"input": "d", "n_init": 3})["n_init"] == 3
    for bad in ({"eigen_solver": "lapack"}, {"n_init": "many"}, {"gamma": -1.0}):
        with pytest.raises(Exception) as excinfo:
            spectral_clustering.validate_parameters({"input": "d", **bad})
        assert next(iter(bad)) in str(excinfo.value)
