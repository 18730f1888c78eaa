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


def test_the_compiled_kernel_is_built():
    """The package's C extension compiles wherever the suite runs (CI included): without it
    the rbf kernel silently falls back to numpy's slower exp."""
    from spectral_core import _fastkernels, _kernels

    assert _kernels._compiled_epilogue is _fastkernels.rbf_epilogue
    assert _fastkernels.ISA in {"avx512", "avx2", "baseline", "portable"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compiled_exp_is_within_two_ulp_of_numpy(dtype):
    from spectral_core._fastkernels import rbf_epilogue

    rng = np.random.default_rng(0)
    tiny = np.finfo(dtype).tiny
    edges = [0.0, -0.0, 1e-3, 5.0, -1e-300, -1e-30, -0.34657, -0.3466, -1.0, -20.0, -86.9,
             -87.1, -700.0, -708.0, -708.5, -745.0, -1e4]
    E = np.concatenate([edges, -rng.exponential(5.0, 20_003), -rng.uniform(0, 800, 20_000)])
    E = E.astype(dtype).reshape(-1, 3)  # 40,020 values: 13,340 rows of 3
    got = E.copy()
    sums = np.zeros(E.shape[1])
    rbf_epilogue(got, sums)
    ref = np.exp(np.minimum(E.astype(np.float64), 0.0))  # positive values clip to exp(0) = 1
    assert got.dtype == dtype and np.all(np.isfinite(got)) and got.max() <= 1.0
    normal = ref > tiny * 2**10  # below, the compiled kernel flushes to 0 (no subnormals)
    rel = np.abs(got[normal] - ref[normal]) / ref[normal]
    assert rel.max() <= 2 * np.finfo(dtype).eps, rel.max() / np.finfo(dtype).eps
    assert np.all(got[~normal] <= tiny * 2**10)
    np.testing.assert_allclose(sums, got.astype(np.float64).sum(axis=0), rtol=1e-12)


def test_compiled_kernel_refuses_what_it_cannot_take():
    from spectral_core._fastkernels import rbf_epilogue

    with pytest.raises(TypeError, match=r"C-contiguous 2-D float32 or float64"):
        rbf_epilogue(np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(TypeError, match=r"C-contiguous 2-D float32 or float64"):
        rbf_epilogue(np.zeros(5))
    with pytest.raises((TypeError, BufferError, ValueError)):
        rbf_epilogue(np.zeros((4, 3))[:, ::2])  # not contiguous
    with pytest.raises(TypeError, match=r"one value per column"):
        rbf_epilogue(np.zeros((4, 3)), np.zeros(2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_fallback_gives_the_same_fit(three_blobs, monkeypatch, dtype):
    """Installed without a compiler, the kernel is numpy's: the same labels, eigenvalues to
    the exp's round-off."""
    from spectral_core import _kernels

    X, _ = three_blobs
    X = X.astype(dtype)
    compiled = SpectralClustering(n_clusters=3, gamma=0.1, n_components=60,
                                  random_state=0).fit(X)
    monkeypatch.setattr(_kernels, "_compiled_epilogue", None)
    plain = SpectralClustering(n_clusters=3, gamma=0.1, n_components=60, random_state=0).fit(X)
    np.testing.assert_array_equal(plain.labels_, compiled.labels_)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(plain.eigenvalues_, compiled.eigenvalues_, rtol=0, atol=tol)


@pytest.mark.parametrize("affinity", ["rbf", "laplacian", "nearest_neighbors"])
def test_tiles_are_the_block_in_order(affinity):
    """``Kernel.tiles`` yields the rows of ``Kernel.cross`` in cache-sized pieces, and adds
    their column sums, for every kind of kernel."""
    from spectral_core import make_kernel
    from spectral_core._blocks import _CHUNK_BYTES

    rng = np.random.default_rng(1)
    rows = 3 * _CHUNK_BYTES // (40 * 8) + 17  # several tiles, the last one short
    X = rng.normal(size=(rows, 4))
    L = sample_landmarks(X, 40, random_state=0)
    kernel = make_kernel(affinity, gamma=0.3) if affinity != "nearest_neighbors" else \
        make_kernel(affinity, n_neighbors=4)
    whole = kernel.cross(X, L)
    whole = whole.toarray() if hasattr(whole, "toarray") else whole
    sums = np.zeros(40)
    parts = [t.toarray() if hasattr(t, "toarray") else t.copy()
             for t in kernel.tiles(X, L, sums=sums)]
    assert len(parts) > 1
    np.testing.assert_allclose(np.vstack(parts), whole, rtol=0, atol=1e-14)
    np.testing.assert_allclose(sums, whole.sum(axis=0), rtol=1e-12)


def test_float32_gram_in_single_precision_pieces_matches_float64_sums(monkeypatch):
    """float32 data: BᵀB summed in float32 a few hundred rows at a time (twice the float64
    rate) moves G by little. Here the kept W's condition number is ≈ 9,000, near the largest
    the route accepts (1e4), where its error is largest: 4e-6 of ‖G‖ (a float32 rbf value
    alone is off by up to 1e-6)."""
    from sklearn.datasets import make_blobs

    from spectral_core import make_kernel

    X, _ = make_blobs(20_000, n_features=6, centers=5, random_state=0)
    X = X.astype(np.float32)
    landmarks = sample_landmarks(X, 200, random_state=0)
    kernel = make_kernel("rbf", gamma=0.1)
    single, _ = kernel_blocks(X, landmarks, kernel)
    monkeypatch.setattr(_kernel_blocks, "_FLOAT32_GRAM_MAX_COND", 0.0)  # float64 pieces
    double, _ = kernel_blocks(X, landmarks, kernel)
    col = np.linalg.norm(double.normalizer, axis=0)
    assert 1e3 < (col.max() / col.min()) ** 2 <= 1e4  # the case the test is about
    assert np.linalg.norm(single.gram - double.gram) <= 1e-5 * np.linalg.norm(double.gram)
    top = slice(-20, None)
    np.testing.assert_allclose(linalg.eigvalsh(single.gram)[top],
                               linalg.eigvalsh(double.gram)[top], rtol=0, atol=1e-6)
