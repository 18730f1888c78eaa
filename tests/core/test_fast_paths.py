"""The performance paths agree with the plain ones: fused rbf, kernel cache, Gram routes,
sampled KMeans."""

import dask
import numpy as np
import pytest
from scipy import linalg
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import rbf_kernel

from spectral_core import (
    SpectralClustering,
    _assign,
    _kernel_blocks,
    kernel_blocks,
    sample_landmarks,
)
from spectral_core._kernels import rbf_cross, squared_distances


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_fused_rbf_matches_scikit_learn(offset):
    rng = np.random.RandomState(0)
    X = rng.randn(500, 7) + offset  # far from the origin: the centring must save precision
    Y = X[rng.choice(500, 60, replace=False)]
    # Differences first: exact to round-off, unlike the ‖x‖² + ‖y‖² - 2xᵀy expansion that
    # scikit-learn uses (off by ~1e-9 at offset 1e3; centring keeps ours at ~1e-15).
    ref = np.exp(-0.3 * ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(rbf_cross(X, Y, 0.3), ref, rtol=0, atol=1e-12)
    if offset == 0:
        np.testing.assert_allclose(rbf_kernel(X, Y, gamma=0.3), ref, rtol=0, atol=1e-12)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    got32 = rbf_cross(X32, Y32, 0.3)
    assert got32.dtype == np.float32
    X32, Y32 = X32.astype(np.float64), Y32.astype(np.float64)  # the data as float32 holds it
    ref32 = np.exp(-0.3 * ((X32[:, None, :] - Y32[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(got32, ref32, rtol=0, atol=2e-6)
    assert got32.max() <= 1.0  # clipped: round-off never pushes a value above 1
    np.testing.assert_allclose(squared_distances(X, Y, scale=-1.0),
                               ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1), rtol=1e-12,
                               atol=1e-10)


def _fit(X, cache, **kw):
    with dask.config.set({"spectral_core.kernel-cache": cache}):
        return SpectralClustering(n_clusters=3, n_components=60, random_state=0,
                                  persist_embedding=True, **kw).fit(X)


@pytest.mark.parametrize("kw", [
    {"gamma": 0.2},
    {"affinity": "nearest_neighbors", "n_neighbors": 5},
    {"affinity": "laplacian", "gamma": 0.1},
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kept_kernel_gives_the_result_without_it(three_blobs, kw, dtype):
    X, y = three_blobs
    X = X.astype(dtype)
    cached, uncached = _fit(X, "1GiB", **kw), _fit(X, 0, **kw)
    # Three separated blobs repeat the top eigenvalue, so the embedding is defined up to a
    # rotation of that eigenspace: compare after the best orthogonal alignment (Procrustes).
    U1, U2 = cached.embedding_.astype(np.float64), uncached.embedding_.astype(np.float64)
    A, _, Bt = linalg.svd(U1.T @ U2)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(U1 @ (A @ Bt), U2, atol=tol)
    np.testing.assert_allclose(cached.eigenvalues_, uncached.eigenvalues_, atol=tol)
    np.testing.assert_array_equal(cached.labels_, uncached.labels_)
    assert adjusted_rand_score(y, cached.labels_) == 1.0


def test_kept_kernel_budget_is_respected(three_blobs):
    X, _ = three_blobs
    landmarks = sample_landmarks(X, 60, random_state=0)
    from spectral_core._kernels import make_kernel

    kernel = make_kernel("rbf", gamma=0.2)
    need = X.shape[0] * 60 * 8
    assert _kernel_blocks.kept_kernel_bytes(X, landmarks, kernel) == need
    summary, kept = kernel_blocks(X, landmarks, kernel, keep_budget=need)
    assert [C.shape for C in kept.blocks] == [(X.shape[0], 60)]
    assert sum(inv.size for inv in kept.inv_sqrt_degrees) == X.shape[0]
    again, nothing = kernel_blocks(X, landmarks, kernel, keep_budget=need - 1)
    assert nothing is None
    np.testing.assert_allclose(again.gram, summary.gram, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cond", ["well", "ill"])
def test_both_gram_routes_equal_the_dense_gram(cond):
    """Sᵀ(CᵀD⁻¹C)S (well-conditioned W) and F̃ᵀF̃ (ill-conditioned) against a direct product."""
    rng = np.random.RandomState(1)
    C = rng.rand(3000, 40)
    lam = np.logspace(0, -3 if cond == "well" else -9, 40)
    V = linalg.qr(rng.randn(40, 40))[0]
    S = V / np.sqrt(lam)
    col = np.linalg.norm(S, axis=0)
    assert ((col.max() / col.min()) ** 2 <= _kernel_blocks._SANDWICH_MAX_COND) == (cond == "well")
    t = rng.rand(40)
    gram, stats, inv = _kernel_blocks._gram_from_cross(C.copy(), t, 1e-12, S, False)
    F = (C / np.sqrt(C @ t)[:, None]) @ S
    ref = F.T @ F
    np.testing.assert_allclose(gram, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    np.testing.assert_allclose(inv, 1 / np.sqrt(C @ t))
    assert stats[0] == 0 and stats[3] == pytest.approx((C @ t).sum())


def test_kmeans_on_a_sample_labels_every_row(monkeypatch):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(3000, n_features=5, centers=4, cluster_std=0.5, random_state=2)
    full = SpectralClustering(n_clusters=4, n_components=80, random_state=0).fit(X)
    monkeypatch.setattr(_assign, "FIT_ROWS", 300)
    sampled = SpectralClustering(n_clusters=4, n_components=80, random_state=0).fit(X)
    assert sampled.assign_labels_.labels_.shape == (300,)  # the centres saw 300 rows
    assert full.assign_labels_.labels_.shape == (3000,)
    # Fitted on 300 rows, yet every row is labelled, and the partition is the full fit's.
    assert adjusted_rand_score(y, sampled.labels_) == 1.0
    assert adjusted_rand_score(full.labels_, sampled.labels_) == 1.0


@pytest.mark.parametrize("n_labels", [5, 300])  # the argmax path and the sorting path
def test_first_appearance_order_numbers_clusters_by_their_first_row(n_labels):
    rng = np.random.RandomState(0)
    raw = rng.randint(-1, n_labels, size=5000)  # -1: noise, kept as it is
    mapped = _assign.first_appearance_order(raw)[raw]
    seen: dict[int, int] = {}
    for label in raw:  # the definition, row by row
        if label >= 0 and label not in seen:
            seen[label] = len(seen)
    expected = np.array([seen.get(label, -1) for label in raw])
    np.testing.assert_array_equal(mapped, expected)
