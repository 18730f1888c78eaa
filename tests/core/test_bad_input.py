"""Every bad parameter or input gets its own message, raised by fit before any heavy work."""

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans

from spectral_core import SpectralClustering

X_OK = np.random.RandomState(0).rand(60, 3)

PARAM_CASES = [
    ({"n_clusters": 0}, ValueError, r"'n_clusters' parameter of SpectralClustering must be an "
     r"int in the range \[1, n_components=10\]. Got 0 instead"),
    ({"n_clusters": 11, "n_components": 10}, ValueError, r"range \[1, n_components=10\]. Got 11"),
    ({"n_clusters": 2.5}, TypeError, r"'n_clusters' parameter .* must be an int. Got 2.5"),
    ({"gamma": 0.0}, ValueError, r"'gamma' parameter of SpectralClustering must be a float > 0. "
     r"Got 0.0 instead"),
    ({"gamma": -1.0}, ValueError, r"must be a float > 0. Got -1.0 instead"),
    ({"gamma": "big"}, TypeError, r"'gamma' parameter .* must be a float or None. Got 'big'"),
    ({"gamma": float("nan")}, ValueError, r"'gamma' parameter .* must be a finite float"),
    ({"affinity": "rbff"}, ValueError, r"'affinity' parameter .* must be one of .*'rbf'.* or a "
     r"callable. Got 'rbff'"),
    ({"affinity": 3}, TypeError, r"'affinity' parameter .* must be a str .* or a callable. Got 3"),
    ({"eigen_solver": "svd"}, ValueError, r"'eigen_solver' parameter .* must be one of "
     r"\{'arpack', 'lobpcg', 'amg'\} or None. Got 'svd'"),
    ({"eigen_solver": 1}, TypeError, r"'eigen_solver' parameter .* must be a str"),
    ({"eigen_tol": -1e-3}, ValueError, r"'eigen_tol' parameter .* must be a float >= 0. Got "
     r"-0.001"),
    ({"kmeans_params": {"n_clusterz": 3}}, ValueError,
     r"'kmeans_params' parameter .* \['n_clusterz'\] are not"),
    ({"kmeans_params": [("max_iter", 3)]}, TypeError, r"'kmeans_params' parameter .* must be a "
     r"dict or None"),
    ({"assign_labels": "kmedoids"}, ValueError, r"'assign_labels' parameter .* must be one of "
     r"\{'kmeans', .*\} or a clusterer instance .*Got 'kmedoids'"),
    ({"assign_labels": 42}, TypeError, r"'assign_labels' parameter .* clusterer instance \(with "
     r"fit and get_params\). Got 42"),
    ({"assign_labels": KMeans}, TypeError, r"'assign_labels' parameter .* Got <class"),
    ({"affinity": "nearest_neighbors", "n_neighbors": 0}, ValueError, r"'n_neighbors' parameter "
     r".* must be an int >= 1. Got 0"),
    ({"affinity": "nearest_neighbors", "n_neighbors": 20, "n_components": 10}, ValueError,
     r"'n_neighbors' parameter .* range \[1, n_components=10\].*Got 20"),
    ({"landmarks": "grid"}, ValueError, r"'landmarks' parameter .* must be one of \{'random', "
     r"'kmeans'\}. Got 'grid'"),
    ({"landmarks": None}, TypeError, r"'landmarks' parameter .* must be a str"),
    ({"n_init": "many"}, ValueError, r"'n_init' parameter .* must be 'auto' or an int >= 1"),
    ({"n_jobs": 0}, ValueError, r"'n_jobs' parameter .* must be an int != 0"),
    ({"n_components": True}, TypeError, r"'n_components' parameter .* must be an int. Got True"),
    ({"random_state": -1}, ValueError, r"'random_state' parameter .* must be an int in the "
     r"range \[0, 4294967295\]. Got -1"),
    ({"random_state": "seed"}, TypeError, r"'random_state' parameter .* must be an int, None or "
     r"a RandomState. Got 'seed'"),
    ({"n_init": 0}, ValueError, r"'n_init' parameter .* must be an int >= 1. Got 0"),
    ({"degree": -1}, ValueError, r"'degree' parameter .* must be a float >= 0. Got -1"),
    ({"kernel_params": "gamma=1"}, TypeError, r"'kernel_params' parameter .* must be a dict or "
     r"None"),
    ({"kernel_params": {"gamma": 2.0}}, ValueError, r"'kernel_params' parameter .* must not "
     r"repeat \['gamma'\]"),
    ({"kernel_params": {"sigma": 2.0}}, ValueError, r"keys \['sigma'\] that the 'rbf' kernel "
     r"does not accept"),
    ({"persist_embedding": "yes"}, TypeError, r"'persist_embedding' parameter .* must be a bool"),
    ({"landmarks": "kmeans", "affinity": "precomputed"}, ValueError, r"'landmarks' parameter .* "
     r"must be 'random' when affinity='precomputed'"),
]


@pytest.mark.parametrize(("params", "error", "match"), PARAM_CASES)
def test_bad_parameters(params, error, match):
    sc = SpectralClustering(**{"n_components": 10, "n_clusters": 2, **params})
    with pytest.raises(error, match=match):
        sc.fit(X_OK)


def _with(value, i=5, j=1):
    X = X_OK.copy()
    X[i, j] = value
    return X


DATA_CASES = [
    (_with(np.nan), {}, ValueError, r"X passed to SpectralClustering contains NaN or inf. First "
     r"at row 5, column 1"),
    (_with(np.inf, 7, 2), {}, ValueError, r"contains NaN or inf. First at row 7, column 2"),
    (da.from_array(_with(-np.inf, 33, 0), chunks=(10, 3)), {}, ValueError,
     r"contains NaN or inf. First at row 33, column 0"),
    (np.array([["a", "b"], ["c", "d"]]), {}, TypeError, r"X passed to SpectralClustering must "
     r"be numeric. Got dtype <U1"),
    (pd.DataFrame({"x": [1.0, 2.0], "s": ["a", "b"]}), {}, TypeError, r"must be numeric; "
     r"columns \['s'\] are not"),
    (np.arange(20.0), {}, ValueError, r"must be a 2-D array .* Got a 1-D array instead. Reshape "
     r"your data"),
    (np.empty((0, 3)), {}, ValueError, r"Got 0 sample\(s\) and 3 feature\(s\)"),
    (np.empty((5, 0)), {}, ValueError, r"Got 5 sample\(s\) and 0 feature\(s\)"),
    (X_OK[:10], {}, ValueError, r"'n_components' parameter of SpectralClustering must be < "
     r"n_samples=10 .* Got 10 instead"),
    (X_OK[:, :2], {"affinity": "precomputed"}, ValueError, r"affinity='precomputed' must be a "
     r"square .* Got shape \(60, 2\)"),
    (-np.ones((60, 60)), {"affinity": "precomputed"}, ValueError, r"affinity='precomputed' must "
     r"be non-negative"),
    (X_OK - 0.5, {"affinity": "chi2"}, ValueError, r"affinity='chi2' must be non-negative"),
]


@pytest.mark.parametrize(("X", "params", "error", "match"), DATA_CASES)
def test_bad_data(X, params, error, match):
    sc = SpectralClustering(**{"n_components": 10, "n_clusters": 2, **params})
    with pytest.raises(error, match=match):
        sc.fit(X)


def test_predict_before_fit_and_with_wrong_features():
    from sklearn.exceptions import NotFittedError

    sc = SpectralClustering(n_components=10, n_clusters=2)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        sc.predict(X_OK)
    sc.fit(X_OK)
    with pytest.raises(ValueError, match=r"X has 2 features, but SpectralClustering is "
                       r"expecting 3 features as input"):
        sc.predict(X_OK[:, :2])


def test_amg_without_pyamg_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyamg", None)  # makes `import pyamg` fail
    sc = SpectralClustering(n_components=10, n_clusters=2, eigen_solver="amg")
    with pytest.raises(ImportError, match=r"Install the 'amg' extra"):
        sc.fit(X_OK)


def test_rank_too_small_for_n_clusters():
    X = np.repeat(np.array([[0.0, 1.0], [5.0, 5.0]]), 30, axis=0)  # two distinct rows
    sc = SpectralClustering(n_components=10, n_clusters=3, random_state=0)
    with pytest.raises(ValueError, match=r"only 2 numerically positive eigenvalues .* fewer than "
                       r"n_clusters=3"):
        sc.fit(X)


def test_checks_run_before_heavy_work(monkeypatch):
    """A bad value is reported without a single kernel evaluation."""
    from spectral_core import _kernels

    calls = []
    monkeypatch.setattr(_kernels.Kernel, "cross", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match="NaN"):
        SpectralClustering(n_components=10, n_clusters=2).fit(
            da.from_array(_with(np.nan, 55, 0), chunks=(10, 3))
        )
    assert calls == []
