"""Finite results for every kernel, clipping and degeneracy warnings, solver agreement."""

import warnings

import numpy as np
import pytest

from spectral_core import (
    AFFINITIES,
    DegenerateKernelWarning,
    DegreeClippingWarning,
    SpectralClustering,
    ZeroEmbeddingWarning,
    eigendecompose,
    embed,
    kernel_blocks,
    make_kernel,
    sample_landmarks,
)

from .solvers import eigenvalue_bound


@pytest.mark.parametrize("affinity", [a for a in AFFINITIES if a != "precomputed"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_affinity_gives_a_finite_orthonormal_embedding(three_blobs, affinity, dtype):
    """UᵀU = I before the rows are normalized; unit rows after; warnings only where due."""
    X, _ = three_blobs
    X = (np.abs(X) if "chi2" in affinity else X / 10.0).astype(dtype)
    kernel = make_kernel(affinity, gamma=0.5, n_neighbors=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        landmarks = sample_landmarks(X, 40, random_state=0)
        summary, _ = kernel_blocks(X, landmarks, kernel, min_rank=3)
        eigen = eigendecompose(summary, 3)
        U = embed(X, landmarks, kernel, summary, eigen, normalize=False)
        sc = SpectralClustering(n_clusters=3, gamma=0.5, n_components=40, random_state=0,
                                affinity=affinity, persist_embedding=True).fit(X)
    # additive_chi2 is negative everywhere (-Σ (x-y)²/(x+y)), so its degrees are clipped.
    expected = {DegreeClippingWarning} if affinity == "additive_chi2" else set()
    assert {w.category for w in caught} == expected
    assert U.dtype == dtype and np.all(np.isfinite(U))
    gram = U.astype(np.float64).T @ U.astype(np.float64)
    np.testing.assert_allclose(gram, np.eye(3), atol=1e-12 if dtype == np.float64 else 1e-5)
    assert np.all(np.isfinite(sc.eigenvalues_)) and np.all(np.diff(sc.eigenvalues_) <= 0)
    norms = np.linalg.norm(sc.embedding_.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-12 if dtype == np.float64 else 1e-6)
    assert set(np.unique(sc.labels_)) == {0, 1, 2}


def test_signed_kernel_degrees_are_clipped_and_counted():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 3)  # centred data: the linear kernel has negative degrees
    sc = SpectralClustering(n_clusters=2, affinity="linear", n_components=20, random_state=0)
    with pytest.warns(DegreeClippingWarning, match=r"\d+ of 300 samples have an approximate "
                      r"degree .* 'linear' affinity can be negative"):
        sc.fit(X)
    assert sc.n_clipped_degrees_ > 0
    assert np.all(np.isfinite(sc.transform(X)))


def test_underflowing_rbf_is_an_error_that_suggests_gamma(three_blobs):
    X, _ = three_blobs
    sc = SpectralClustering(n_clusters=3, gamma=1e6, n_components=30, random_state=0)
    with pytest.raises(ValueError, match=r"exactly 0 between every pair of landmarks "
                       r"\(underflow\).* Try gamma ≈ 0\.0\d+"):
        sc.fit(X)


def test_narrow_rbf_warns_and_suggests_gamma(three_blobs):
    X, _ = three_blobs
    sc = SpectralClustering(n_clusters=3, gamma=100.0, n_components=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegreeClippingWarning)
        with pytest.warns(DegenerateKernelWarning, match=r"nearly the identity.* Try gamma ≈ "):
            sc.fit(X)


def test_wide_rbf_warns(three_blobs):
    X, _ = three_blobs
    sc = SpectralClustering(n_clusters=1, gamma=1e-9, n_components=30, random_state=0)
    with pytest.warns(DegenerateKernelWarning, match=r"nearly all ones.* Try gamma ≈ "):
        sc.fit(X)


def test_no_warning_for_a_sensible_gamma(three_blobs):
    X, _ = three_blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(X)


@pytest.mark.parametrize("solver", ["arpack", "lobpcg", "amg"])
def test_iterative_solvers_agree_with_dense(three_blobs, solver):
    X, _ = three_blobs
    dense = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(X)
    other = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0, eigen_solver=solver,
                               eigen_tol=1e-10).fit(X)
    # The same landmarks, so the same G (r × r, r ≤ n_components = 100): the two differ by the
    # iterative solver's stopping rule and the dense solve's round-off.
    atol = (eigenvalue_bound(solver, 1e-10, n=100, k=3)
            + eigenvalue_bound(None, 0.0, n=100, k=3))
    np.testing.assert_allclose(other.eigenvalues_, dense.eigenvalues_, rtol=0, atol=atol)
    np.testing.assert_array_equal(other.labels_, dense.labels_)


def test_rows_with_no_affinity_embed_to_zero_and_are_reported():
    """A row far from every landmark has C = 0 within float64: it embeds to 0, never NaN."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(300, 2), [[1e3, 1e3], [-1e3, 1e3]]])
    sc = SpectralClustering(n_clusters=2, gamma=1.0, n_components=30, random_state=1,
                            persist_embedding=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegreeClippingWarning)
        with pytest.warns(ZeroEmbeddingWarning, match=r"2 of 302 samples have an all-zero "
                          r"embedding"):
            sc.fit(X)
    assert not {300, 301} & set(sc.landmark_indices_)  # neither outlier is a landmark
    assert np.all(sc.embedding_[-2:] == 0)
    assert np.all(np.isfinite(sc.embedding_))
