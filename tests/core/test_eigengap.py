"""The eigengap suggestion of n_clusters: the rule on hand-made spectra, then on known blobs."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from spectral_core import SpectralClustering, eigengap_n_clusters, spectrum_size

from .solvers import eigenvalue_bound


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 0.98, 0.97, 0.3, 0.2, 0.1], 3),  # three blocks, then a clear drop
        ([1.0, 0.2, 0.15, 0.1], 1),  # one block: the first gap is the largest
        ([1.0, 0.9, 0.8, 0.7, 0.6], 1),  # equal gaps: the smallest k
        ([1.0, 0.5, 0.0], 1),  # exact tie between k = 1 and k = 2
        ([1.0, 0.99, 0.2, -0.3, -0.5], 2),  # an indefinite kernel's negative eigenvalues
        ([1.0, 1.0, 1.0, 1.0, 0.0], 4),  # repeated eigenvalue 1: disconnected graph parts
        ([1.0, 0.5], 1),  # the shortest spectrum that has a gap
        ([1, 1, 0], 2),  # integers are numbers too
    ],
)
def test_largest_gap_wins_and_ties_go_to_the_smallest_k(values, expected):
    assert eigengap_n_clusters(values) == expected
    assert eigengap_n_clusters(np.asarray(values, dtype=np.float32)) == expected


def test_max_clusters_limits_the_search():
    values = [1.0, 0.97, 0.96, 0.9, 0.3, 0.1]  # largest gap after 4
    assert eigengap_n_clusters(values) == 4
    assert eigengap_n_clusters(values, max_clusters=3) == 3
    assert eigengap_n_clusters(values, max_clusters=2) == 1
    assert eigengap_n_clusters(values, max_clusters=np.int64(5)) == 4


def test_round_off_swaps_are_accepted():
    # An iterative solver can return two equal eigenvalues in either order at 1e-15.
    assert eigengap_n_clusters([1.0, 1.0 + 1e-15, 1.0, 0.1]) == 3


@pytest.mark.parametrize(
    ("values", "kwargs", "error", "match"),
    [
        ([1.0], {}, ValueError, r"needs at least 2 values to have a gap\. Got 1 instead"),
        ([], {}, ValueError, r"needs at least 2 values.*Got 0 instead"),
        ([[1.0, 0.5], [0.4, 0.3]], {}, ValueError, r"must be 1-D\. Got shape \(2, 2\)"),
        ([1.0, np.nan, 0.1], {}, ValueError, r"must be finite\. Got nan at index 1"),
        ([1.0, np.inf], {}, ValueError, r"must be finite\. Got inf at index 1"),
        ([0.1, 0.5, 1.0], {}, ValueError,
         r"must be in descending order\. Got 0\.1 before 0\.5 at index 0.*np\.sort"),
        (["a", "b"], {}, TypeError, r"must be an array of real numbers\. Got dtype <U1"),
        ([1.0, None], {}, TypeError, r"must be an array of real numbers\. Got dtype object"),
        ([1.0 + 0j, 0.5], {}, TypeError, r"must be real \(the affinity is symmetric\)"),
        ([1.0, 0.5, 0.1], {"max_clusters": 0}, ValueError,
         r"'max_clusters' parameter of eigengap_n_clusters must be in \[1, 2\].*Got 0"),
        ([1.0, 0.5, 0.1], {"max_clusters": 3}, ValueError,
         r"needs λ_\(k\+1\), and 3 eigenvalues were given\)\. Got 3 instead"),
        ([1.0, 0.5, 0.1], {"max_clusters": 2.0}, TypeError,
         r"'max_clusters' .* must be an int or None\. Got 2\.0 instead"),
        ([1.0, 0.5, 0.1], {"max_clusters": True}, TypeError, r"Got True instead"),
    ],
)
def test_bad_input_is_refused_with_the_reason(values, kwargs, error, match):
    with pytest.raises(error) as info:
        eigengap_n_clusters(values, **kwargs)
    assert info.match(match)


def test_spectrum_size():
    assert spectrum_size(3, 500) == 20
    assert spectrum_size(12, 500) == 24
    assert spectrum_size(3, 10) == 10


def _blobs(centers):
    # Well separated: centres 40 apart at most, spread 0.6 (every ARI below is 1.0).
    return make_blobs(3000, n_features=4, centers=centers, cluster_std=0.6,
                      center_box=(-20, 20), random_state=3)


@pytest.mark.parametrize("centers", [3, 5, 7])
@pytest.mark.parametrize(
    "config",
    [dict(gamma=0.1), dict(gamma=0.1, eigen_solver="arpack"),
     dict(gamma=0.1, eigen_solver="lobpcg"), dict(gamma=0.1, eigen_solver="amg"),
     dict(affinity="nearest_neighbors", n_neighbors=5)],
    ids=["rbf-dense", "rbf-arpack", "rbf-lobpcg", "rbf-amg", "knn-dense"],
)
def test_suggestion_is_the_true_number_of_blobs_whatever_n_clusters(centers, config):
    X, y = _blobs(centers)
    # Fitted with a wrong guess, too few and too many: the spectrum still shows the truth.
    for guess in (2, 9):
        sc = SpectralClustering(n_clusters=guess, n_components=100, random_state=0,
                                **config).fit(X)
        assert sc.eigengap_n_clusters_ == centers
        width = sc.eigenvalues_.size
        assert sc.spectrum_.shape == (max(2 * width, 20),)
        assert np.all(np.diff(sc.spectrum_) <= 1e-9)
        # The eigenvalues come from the chosen solver, the spectrum beside an iterative one
        # from ARPACK (both at their default tolerance, eigen_tol=0): each within its own
        # stopping rule of the truth. G is r × r with r ≤ n_components = 100.
        solver = config.get("eigen_solver")
        spectrum_solver = None if solver is None else "arpack"
        atol = (eigenvalue_bound(solver, 0.0, n=100, k=width)
                + eigenvalue_bound(spectrum_solver, 0.0, n=100, k=width))
        np.testing.assert_allclose(sc.spectrum_[:width], sc.eigenvalues_, rtol=0, atol=atol)
    # ... and with the suggestion as n_clusters, the labels are the blobs.
    from sklearn.metrics import adjusted_rand_score

    sc = SpectralClustering(n_clusters=sc.eigengap_n_clusters_, n_components=100,
                            random_state=0, **config).fit(X)
    assert adjusted_rand_score(y, sc.labels_) == pytest.approx(1.0)


def test_one_landmark_has_no_gap_and_no_suggestion():
    X, _ = _blobs(3)
    sc = SpectralClustering(n_clusters=1, n_components=1, gamma=1e-3, random_state=0).fit(X)
    assert sc.spectrum_.shape == (1,)
    assert sc.eigengap_n_clusters_ is None
