"""scikit-learn's estimator checks, and the estimator contract around them."""

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.utils.estimator_checks import parametrize_with_checks

from spectral_core import SpectralClustering

EXPECTED_FAILED_CHECKS = {
    "check_methods_sample_order_invariance": (
        "the check sets n_components=1 (as if it were an output dimension); here it is the "
        "number of landmarks and must be ≥ n_clusters, so fit rightly refuses"
    ),
}


@parametrize_with_checks(
    [SpectralClustering(n_clusters=3, n_components=5, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_signature_matches_dask_ml():
    expected = dict(
        n_clusters=8, eigen_solver=None, random_state=None, n_init="auto", gamma=1.0,
        affinity="rbf", n_neighbors=10, eigen_tol=0.0, assign_labels="kmeans", degree=3,
        coef0=1, kernel_params=None, n_jobs=1, n_components=100, persist_embedding=False,
        kmeans_params=None, landmarks="random",
    )
    params = inspect.signature(SpectralClustering).parameters
    assert list(params) == list(expected)
    assert {k: p.default for k, p in params.items()} == expected


def test_kernel_params_and_given_assigner_are_not_mutated(three_blobs):
    X, _ = three_blobs

    def kernel(X, Y, gamma, scale):
        from sklearn.metrics.pairwise import rbf_kernel

        return scale * rbf_kernel(X, Y, gamma=gamma)

    kernel_params = {"scale": 2.0}
    assigner = MiniBatchKMeans(n_clusters=99, n_init=3)
    before = clone(assigner).get_params()
    sc = SpectralClustering(n_clusters=3, gamma=0.1, affinity=kernel,
                            kernel_params=kernel_params, assign_labels=assigner,
                            kmeans_params={"batch_size": 256}, random_state=0).fit(X)
    assert kernel_params == {"scale": 2.0}
    assert assigner.get_params() == before
    assert not hasattr(assigner, "labels_")
    fitted = sc.assign_labels_
    assert fitted is not assigner
    assert fitted.n_clusters == 3 and fitted.batch_size == 256
    assert fitted.random_state is not None  # seeded from random_state since it was None


def test_kmeans_params_reach_kmeans(three_blobs):
    X, _ = three_blobs
    sc = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0, n_init=4,
                            kmeans_params={"algorithm": "elkan", "max_iter": 7}).fit(X)
    assert isinstance(sc.assign_labels_, KMeans)
    assert (sc.assign_labels_.algorithm, sc.assign_labels_.max_iter) == ("elkan", 7)
    assert sc.assign_labels_.n_init == 4


def test_callable_gets_only_the_keywords_it_accepts(three_blobs):
    X, _ = three_blobs
    seen = []

    def kernel(X, Y, degree):
        seen.append(degree)
        return np.exp(-0.1 * ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1))

    SpectralClustering(n_clusters=3, affinity=kernel, degree=5, random_state=0).fit(X)
    assert seen and set(seen) == {5.0}
    with pytest.raises(ValueError, match=r"keys \['scale'\] that the affinity callable"):
        SpectralClustering(n_clusters=3, affinity=kernel, kernel_params={"scale": 1}).fit(X)


def test_callable_equals_named_kernel(three_blobs):
    from sklearn.metrics.pairwise import rbf_kernel

    X, _ = three_blobs
    named = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(X)
    as_callable = SpectralClustering(n_clusters=3, gamma=0.1, affinity=rbf_kernel,
                                     random_state=0).fit(X)
    np.testing.assert_array_equal(named.labels_, as_callable.labels_)
    np.testing.assert_allclose(named.eigenvalues_, as_callable.eigenvalues_, rtol=1e-12)


def test_set_params_and_metadata_routing():
    sc = SpectralClustering().set_params(n_clusters=4, landmarks="kmeans")
    assert sc.get_params()["n_clusters"] == 4 and sc.get_params()["landmarks"] == "kmeans"
    routing = sc.get_metadata_routing()
    # fit(X, y=None) and predict(X) consume no metadata (sample_weight, groups, ...).
    assert routing.fit.requests == {} and routing.predict.requests == {}
    assert not hasattr(sc, "set_fit_request")
