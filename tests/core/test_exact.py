"""With every row a landmark, the stages reproduce exact normalized spectral clustering."""

import numpy as np
import pytest
from scipy.linalg import eigh, subspace_angles
from sklearn.metrics.pairwise import pairwise_kernels

from spectral_core import (
    Landmarks,
    eigendecompose,
    embed,
    kernel_blocks,
    make_kernel,
)

CASES = [
    ("rbf", {"gamma": 0.2}, False),
    ("laplacian", {"gamma": 0.2}, False),
    ("cosine", {}, True),
    ("chi2", {"gamma": 0.5}, True),
]


def _dense_reference(X, affinity, params, k):
    K = pairwise_kernels(X, metric=affinity, **params)
    d = K.sum(axis=1)
    A = K / np.sqrt(np.outer(d, d))
    w, V = eigh(A)
    return w[::-1][:k], V[:, ::-1][:, :k]


def _all_rows(X):
    return Landmarks(points=X.copy(), indices=np.arange(X.shape[0]))


@pytest.mark.parametrize(("affinity", "params", "positive"), CASES)
@pytest.mark.parametrize("eigen_solver", [None, "arpack", "lobpcg", "amg"])
def test_embedding_spans_dense_eigenvectors(small_groups, affinity, params, positive,
                                            eigen_solver):
    # cosine and chi2 need non-negative data to be non-negative affinities.
    X = np.abs(small_groups) + 0.1 if positive else small_groups
    k = 3
    kernel = make_kernel(affinity, **params)
    landmarks = _all_rows(X)
    summary, _ = kernel_blocks(X, landmarks, kernel, min_rank=k)
    eigen = eigendecompose(summary, k, eigen_solver=eigen_solver, eigen_tol=1e-12,
                           random_state=0)
    U = embed(X, landmarks, kernel, summary, eigen, normalize=False)
    w_ref, V_ref = _dense_reference(X, affinity, params, k)
    assert np.max(subspace_angles(U, V_ref)) < 1e-6
    np.testing.assert_allclose(eigen.eigenvalues, w_ref, atol=1e-8)
    # The longer spectrum (for the eigengap suggestion) is the exact one too, on every route.
    s = min(summary.gram.shape[0], 20)
    assert eigen.spectrum.shape == (s,) and s >= k  # cosine on 3-D data: rank 3
    np.testing.assert_allclose(eigen.spectrum, _dense_reference(X, affinity, params, s)[0],
                               atol=1e-8)
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-8)
    assert summary.n_clipped == 0


def test_embedding_blocks_do_not_change_result(small_groups):
    """Splitting into many row blocks gives the same embedding as one block."""
    import dask.array as da

    kernel = make_kernel("rbf", gamma=0.2)
    landmarks = _all_rows(small_groups)
    one, _ = kernel_blocks(small_groups, landmarks, kernel)
    many, _ = kernel_blocks(da.from_array(small_groups, chunks=(7, 3)), landmarks, kernel)
    np.testing.assert_allclose(one.gram, many.gram, rtol=1e-10, atol=1e-12)
    e1 = eigendecompose(one, 3)
    U1 = embed(small_groups, landmarks, kernel, one, e1)
    U2 = embed(da.from_array(small_groups, chunks=(7, 3)), landmarks, kernel, many, e1)
    np.testing.assert_allclose(U1, U2.compute(), atol=1e-10)


def test_landmark_graph_is_exact_bipartite_spectral_clustering(small_groups):
    """nearest_neighbors: U spans the top eigenvectors of Z Δ⁻¹ Zᵀ built densely."""
    from spectral_core import sample_landmarks

    k = 3
    landmarks = sample_landmarks(small_groups, 30, random_state=0)
    kernel = make_kernel("nearest_neighbors", n_neighbors=4)
    summary, _ = kernel_blocks(small_groups, landmarks, kernel, min_rank=k)
    eigen = eigendecompose(summary, k)
    U = embed(small_groups, landmarks, kernel, summary, eigen, normalize=False)
    Z = kernel.cross(small_groups, landmarks).toarray()
    delta = Z.sum(axis=0)
    keep = delta > 0
    K = Z[:, keep] @ np.diag(1 / delta[keep]) @ Z[:, keep].T
    np.testing.assert_allclose(K.sum(axis=1), 1.0, atol=1e-12)  # degrees are all 1
    w, V = eigh(K)
    assert np.max(subspace_angles(U, V[:, ::-1][:, :k])) < 1e-6
    np.testing.assert_allclose(eigen.eigenvalues, w[::-1][:k], atol=1e-10)
    assert eigen.eigenvalues[0] == pytest.approx(1.0, abs=1e-10)


def test_graph_embedding_keeps_two_more_eigenvectors(small_groups):
    """nearest_neighbors: the estimator embeds with the top k + 2 eigenvectors of the dense
    Z Δ⁻¹ Zᵀ (trivial one included); the kernel affinities keep the top k."""
    from spectral_core import SpectralClustering, embedding_width

    k = 3
    sc = SpectralClustering(n_clusters=k, affinity="nearest_neighbors", n_neighbors=4,
                            n_components=30, persist_embedding=True, random_state=0)
    sc.fit(small_groups)
    assert embedding_width("nearest_neighbors", k, 30) == k + 2
    assert sc.embedding_.shape == (small_groups.shape[0], k + 2)
    Z = sc._kernel.cross(small_groups, sc._landmark_set).toarray()
    delta = Z.sum(axis=0)
    keep = delta > 0
    w = eigh(Z[:, keep] @ np.diag(1 / delta[keep]) @ Z[:, keep].T, eigvals_only=True)
    np.testing.assert_allclose(sc.eigenvalues_, w[::-1][:k + 2], atol=1e-10)
    rbf = SpectralClustering(n_clusters=k, gamma=0.2, n_components=30, persist_embedding=True,
                             random_state=0).fit(small_groups)
    assert rbf.embedding_.shape[1] == k == rbf.eigenvalues_.size
