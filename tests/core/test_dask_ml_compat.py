"""Inputs dask-ml's SpectralClustering accepts, accepted here with the same meaning."""

from functools import partial

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import pairwise_kernels, rbf_kernel

from spectral_core import SpectralClustering

X, Y = make_blobs(400, n_features=3, centers=3, cluster_std=0.8, random_state=0)
BASE = dict(n_clusters=3, n_components=40, random_state=0)


def test_a_callable_taking_kwargs_gets_gamma_degree_and_coef0():
    seen = []

    def kernel(A, B=None, **kw):
        seen.append(kw)
        return rbf_kernel(A, B, gamma=kw["gamma"])

    SpectralClustering(**BASE, affinity=kernel, gamma=0.3, degree=2, coef0=0.5).fit(X)
    assert seen and all(kw == {"gamma": 0.3, "degree": 2, "coef0": 0.5} for kw in seen)


def test_a_partial_of_pairwise_kernels_uses_the_estimators_gamma():
    named = SpectralClustering(**BASE, gamma=0.01).fit(X)
    as_partial = SpectralClustering(
        **BASE, gamma=0.01,
        affinity=partial(pairwise_kernels, metric="rbf", filter_params=True, gamma=1.0),
    ).fit(X)
    np.testing.assert_array_equal(as_partial.labels_, named.labels_)
    np.testing.assert_allclose(as_partial.eigenvalues_, named.eigenvalues_, rtol=1e-10)
    # gamma=None reaches the callable and overrides the partial's own gamma, as in dask-ml.
    default = SpectralClustering(**BASE, gamma=None).fit(X)
    as_partial = SpectralClustering(
        **BASE, gamma=None,
        affinity=partial(pairwise_kernels, metric="rbf", filter_params=True, gamma=1.0),
    ).fit(X)
    np.testing.assert_array_equal(as_partial.labels_, default.labels_)


def test_kmeans_params_may_set_what_the_estimator_sets():
    sc = SpectralClustering(**BASE, assign_labels="sklearn-kmeans",
                            kmeans_params={"n_clusters": 4, "n_init": 2}).fit(X)
    assert sc.assign_labels_.n_clusters == 4 and sc.assign_labels_.n_init == 2
    assert len(np.unique(sc.labels_)) == 4


def test_eigen_tol_auto_is_the_solvers_default():
    auto = SpectralClustering(**BASE, eigen_solver="arpack", eigen_tol="auto").fit(X)
    zero = SpectralClustering(**BASE, eigen_solver="arpack", eigen_tol=0.0).fit(X)
    np.testing.assert_array_equal(auto.labels_, zero.labels_)
    np.testing.assert_allclose(auto.eigenvalues_, zero.eigenvalues_, rtol=1e-12)


def test_dask_and_pandas_dataframes_and_numeric_categoricals():
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    reference = SpectralClustering(**BASE, gamma=0.2).fit(X)
    from_dask = SpectralClustering(**BASE, gamma=0.2).fit(dd.from_pandas(frame, npartitions=3))
    np.testing.assert_array_equal(np.asarray(from_dask.labels_), reference.labels_)
    assert isinstance(from_dask.labels_, da.Array)
    rounded = frame.assign(c=pd.Categorical(np.round(frame["c"])))
    on_categories = SpectralClustering(**BASE, gamma=0.2).fit(rounded)
    assert adjusted_rand_score(Y, on_categories.labels_) > 0.9
