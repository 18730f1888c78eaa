"""One table of parameters: it matches the estimator, feeds the pipeline's model, and is
checked before any pass over the data."""

import inspect
import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import chi2_kernel, pairwise_kernels
from sklearn.preprocessing import StandardScaler

from spectral_core import (
    Landmarks,
    SolverFallbackWarning,
    SpectralClustering,
    _estimator,
    make_kernel,
)
from spectral_core.params import PARAMETERS


def test_the_table_is_the_estimators_signature():
    signature = inspect.signature(SpectralClustering.__init__).parameters
    assert list(PARAMETERS) == [n for n in signature if n != "self"]
    for name, spec in PARAMETERS.items():
        assert spec.default == signature[name].default, name
        assert spec.doc, name


def test_the_pipeline_model_is_generated_from_the_table():
    from spectral_pipeline.flows.params import SpectralParams

    schema = SpectralParams.model_json_schema()["properties"]
    for name, spec in PARAMETERS.items():
        prop = schema[name]
        assert prop["default"] == spec.default, name
        options = prop.get("anyOf", [prop])
        enums = [v for o in options for v in o.get("enum", [o["const"]] if "const" in o else [])]
        assert set(enums) == set(spec.choices), name
        assert ({"type": "null"} in options) == ("none" in spec.kinds), name
        numeric = [o for o in options if o.get("type") in ("integer", "number")]
        assert bool(numeric) == bool({"int", "real"} & set(spec.kinds)), name
        for o in numeric:
            low = o.get("exclusiveMinimum", o.get("minimum"))
            assert low == spec.low, name
            assert ("exclusiveMinimum" in o) == spec.low_open, name
            high = spec.high if not isinstance(spec.high, str) else None
            assert o.get("maximum") == high, name


KERNELS = ["rbf", "laplacian", "poly", "polynomial", "sigmoid", "chi2", "linear", "cosine",
           "additive_chi2"]


@pytest.mark.parametrize("affinity", KERNELS)
def test_gamma_none_is_the_kernels_own_default(affinity):
    X = np.abs(np.random.default_rng(0).normal(size=(40, 5)))
    L = Landmarks(points=X[:9], indices=np.arange(9))
    got = make_kernel(affinity, gamma=None).cross(X, L)
    if affinity == "chi2":
        # scikit-learn's pairwise_kernels(metric='chi2', gamma=None) fails inside numpy;
        # chi2_kernel's own default is gamma=1.0.
        ref = chi2_kernel(X, X[:9])
    else:
        ref = pairwise_kernels(X, X[:9], metric=affinity, filter_params=True, gamma=None)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
    if affinity in ("rbf", "laplacian", "poly", "polynomial", "sigmoid"):
        explicit = make_kernel(affinity, gamma=1 / X.shape[1]).cross(X, L)
        np.testing.assert_allclose(got, explicit, rtol=1e-12, atol=1e-14)


def test_gamma_none_on_standardized_blobs_as_dask_ml_tests_it():
    X, y = make_blobs(600, n_features=4, centers=3, cluster_std=0.7, random_state=1)
    X = StandardScaler().fit_transform(X)
    explicit = SpectralClustering(n_clusters=3, n_components=50, gamma=0.25,
                                  random_state=0).fit(X)
    default = SpectralClustering(n_clusters=3, n_components=50, gamma=None,
                                 random_state=0).fit(da.from_array(X, chunks=200))
    np.testing.assert_array_equal(np.asarray(default.labels_), explicit.labels_)
    assert adjusted_rand_score(y, explicit.labels_) > 0.95


def test_a_callable_affinity_naming_gamma_receives_none():
    seen = []

    def kernel(X, Y, gamma):
        seen.append(gamma)
        return pairwise_kernels(X, Y, metric="rbf", gamma=gamma)

    X, _ = make_blobs(200, n_features=3, centers=2, random_state=0)
    SpectralClustering(n_clusters=2, n_components=20, affinity=kernel, gamma=None,
                       random_state=0).fit(X)
    assert seen and set(seen) == {None}


def test_an_iterative_solver_that_cannot_run_falls_back_out_loud():
    X, _ = make_blobs(300, n_features=3, centers=3, random_state=0)
    with pytest.warns(SolverFallbackWarning, match=r"eigen_solver='lobpcg' cannot compute 3 "
                      r"eigenpairs of a 10 × 10 problem .* using dense LAPACK"):
        lobpcg = SpectralClustering(n_clusters=3, n_components=10, eigen_solver="lobpcg",
                                    random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SolverFallbackWarning)
        dense = SpectralClustering(n_clusters=3, n_components=10, random_state=0).fit(X)
    np.testing.assert_array_equal(lobpcg.labels_, dense.labels_)


@pytest.mark.parametrize(("params", "n", "match"), [
    ({"kernel_params": {"sigma": 1}}, 60, r"keys \['sigma'\] that the 'rbf' kernel"),
    ({"n_components": 60}, 60, r"'n_components' parameter .* must be < n_samples=60"),
    ({"affinity": "precomputed"}, 60, r"must be a square"),
    ({"n_clusters": 0}, 60, r"'n_clusters' parameter"),
])
def test_every_free_check_comes_before_the_pass_over_dask_data(monkeypatch, params, n, match):
    passes = []
    monkeypatch.setattr(_estimator, "data_stats", lambda X: passes.append(X) or (True, 0.0))
    X = da.from_array(np.random.default_rng(0).random((n, 3)), chunks=(20, 3))
    with pytest.raises(ValueError, match=match):
        SpectralClustering(**{"n_components": 10, "n_clusters": 2, **params}).fit(X)
    assert passes == []
