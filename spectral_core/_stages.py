"""The five stages of Nyström spectral clustering, and their block-level kernels.

Notation (DESIGN.md): X is (n, d), the landmarks L are m = ``n_components`` rows, C = κ(X, L) is
(n, m) and is never formed whole: every n-sized quantity is produced block by block over rows.

    W = κ(L, L) = V Λ Vᵀ,  S = V_r Λ_r^{-1/2}  (m, r),  M = S Sᵀ = W⁺ on its positive part
    s = Cᵀ1,  t = M s,  d = C t                   (approximate degrees of K ≈ C M Cᵀ)
    F̃ = D^{-1/2} C S,  G = F̃ᵀ F̃  (r, r)          (Â = D^{-1/2} K D^{-1/2} ≈ F̃ F̃ᵀ)
    G = R Σ Rᵀ,  P = S R_k Σ_k^{-1/2}  (m, k)
    U = D^{-1/2} C P  (n, k), orthonormal columns = top-k eigenvectors of the approximate Â.

For ``affinity='nearest_neighbors'`` C is the row-stochastic landmark graph Z and
K = Z Δ⁻¹ Zᵀ with Δ = diag(Zᵀ1): the same formulas with S = Δ^{-1/2} (diagonal) taken from the
column sums instead of from W, so that t = 1 and d = 1.

Each stage is a module-level function with a fixed return type whose fields are numpy arrays and
numbers (easy to write to Parquet). Stages accept a numpy array or a row-chunked dask array;
n-sized results come back in the same kind, small results are always numpy.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.utils import parse_bytes
from scipy import linalg, sparse
from scipy.sparse.linalg import eigsh, lobpcg
from sklearn.utils import check_random_state

from ._kernels import Kernel, _result_dtype
from ._utils import (
    DegenerateKernelWarning,
    DegreeClippingWarning,
    as_blocks,
    block_rows_for,
    map_blocks_delayed,
    map_parts,
    split_rows,
    sum_in_order,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DegreeWeights",
    "EigenResult",
    "KernelCache",
    "KernelSummary",
    "Landmarks",
    "block_column_sums",
    "block_embedding",
    "block_gram",
    "degree_weights",
    "eigendecompose",
    "embed",
    "embed_rows",
    "kernel_blocks",
    "kernel_cache_budget",
    "landmark_normalizer",
    "prepare_landmark_kernel",
    "sample_landmarks",
    "summarize_kernel_blocks",
]

#: Landmark-kernel eigenvalues below ``rcond · λ_max`` are treated as zero (not inverted).
_RCOND_FLOOR = 1e-10
#: Degrees below this fraction of the mean degree are clipped (and counted).
_DEGREE_FLOOR_REL = 1e-8
#: Landmark sample size for ``landmarks='kmeans'``, as a multiple of ``n_components``.
KMEANS_LANDMARK_SAMPLE = 10
#: Lloyd iterations for ``landmarks='kmeans'``: a cheap refinement, not a converged k-means.
KMEANS_LANDMARK_ITER = 20


@dataclass(frozen=True)
class Landmarks:
    """Landmarks used for the Nyström approximation.

    Attributes
    ----------
    points : ndarray of shape (m, d)
        The landmark points. For ``affinity='precomputed'`` this is W = X[I][:, I], (m, m).
    indices : ndarray of shape (m,) or None
        Row indices of X the landmarks were taken from (sorted), or ``None`` when the
        landmarks are k-means centres rather than rows of X.
    """

    points: np.ndarray
    indices: np.ndarray | None

    @property
    def n_landmarks(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True)
class KernelSummary:
    """Everything the later stages need from the two passes of :func:`kernel_blocks`.

    Attributes
    ----------
    column_sums : ndarray (m,)
        s = Cᵀ1.
    normalizer : ndarray (m, r)
        S, with M = S Sᵀ the (pseudo-)inverse of the landmark kernel on its positive part.
    diagonal : bool
        Whether S is diagonal (the landmark graph), which lets sparse blocks skip a GEMM.
    degree_weights : ndarray (m,)
        t = M s, so that the degree of a row c of C is cᵀt.
    degree_floor : float
        Degrees below this are clipped to it.
    gram : ndarray (r, r)
        G = F̃ᵀF̃.
    landmark_eigenvalues : ndarray (m,)
        Eigenvalues of W, descending (for the graph: the column sums s, descending).
    n_samples, n_clipped : int
        Number of rows, and of rows whose degree was clipped.
    degree_min, degree_max, degree_mean : float
        Statistics of the degrees before clipping.
    """

    column_sums: np.ndarray
    normalizer: np.ndarray
    diagonal: bool
    degree_weights: np.ndarray
    degree_floor: float
    gram: np.ndarray
    landmark_eigenvalues: np.ndarray
    n_samples: int
    n_clipped: int
    degree_min: float
    degree_max: float
    degree_mean: float

    @property
    def rank(self) -> int:
        return int(self.normalizer.shape[1])


@dataclass(frozen=True)
class EigenResult:
    """Top-k eigenpairs of the approximate normalized affinity.

    Attributes
    ----------
    eigenvalues : ndarray (k,)
        Descending; the top one is ≈ 1 for a connected non-negative affinity.
    projection : ndarray (m, k)
        P = S R_k Σ_k^{-1/2}: the embedding of a row c of C with degree δ is (c/√δ) P.
    """

    eigenvalues: np.ndarray
    projection: np.ndarray


# --------------------------------------------------------------------------------------------
# Stage 1: landmarks
# --------------------------------------------------------------------------------------------


def sample_landmarks(
    X: Any,
    n_components: int,
    *,
    method: str = "random",
    precomputed: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> Landmarks:
    """Choose the m = ``n_components`` landmarks.

    Parameters
    ----------
    X : ndarray or dask array of shape (n, d)
    n_components : int
        Number of landmarks, < n.
    method : {'random', 'kmeans'}
        ``'random'``: m distinct rows drawn uniformly (dask-ml's choice). ``'kmeans'``: the
        centres of a short k-means with m clusters on a uniform sample of ~10·m rows (the
        "hybrid" selection of U-SPEC, Huang et al. 2020): better landmarks at a cost that
        does not grow with n.
    precomputed : bool
        X is an (n, n) affinity; the landmark points become W = X[I][:, I].
    random_state : int, RandomState or None

    Returns
    -------
    Landmarks

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.RandomState(0).rand(50, 3)
    >>> sample_landmarks(X, 5, random_state=0).points.shape
    (5, 3)
    """
    rng = check_random_state(random_state)
    n = X.shape[0]
    if method == "random":
        indices = np.sort(rng.choice(n, size=n_components, replace=False))
        rows = _take_rows(X, indices)
        points = rows[:, indices] if precomputed else rows
        return Landmarks(points=np.ascontiguousarray(points), indices=indices)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        size = min(n, KMEANS_LANDMARK_SAMPLE * n_components)
        sample = _take_rows(X, np.sort(rng.choice(n, size=size, replace=False)))
        km = KMeans(
            n_clusters=n_components,
            n_init=1,
            max_iter=KMEANS_LANDMARK_ITER,
            random_state=rng.randint(np.iinfo(np.int32).max),
        )
        with warnings.catch_warnings():
            # A short run is the point: not converging in KMEANS_LANDMARK_ITER is expected.
            warnings.simplefilter("ignore")
            km.fit(sample)
        centres = km.cluster_centers_.astype(sample.dtype, copy=False)
        return Landmarks(points=np.ascontiguousarray(centres), indices=None)
    raise ValueError(f"Unknown landmark method {method!r}; expected 'random' or 'kmeans'.")


def _take_rows(X: Any, indices: np.ndarray) -> np.ndarray:
    rows = X[indices]
    if isinstance(rows, da.Array):
        rows = rows.compute()
    return np.asarray(rows)


# --------------------------------------------------------------------------------------------
# Stage 2: kernel blocks (two passes over the data)
# --------------------------------------------------------------------------------------------


#: Bytes of C evaluated at a time inside a block: small enough to stay in cache and below
#: malloc's mmap threshold (32 MB), so the temporaries are reused instead of page-faulted in
#: afresh for every block (measured in benchmarks/profile.md).
_CHUNK_BYTES = 4 * 2**20


def _chunks(X_block: np.ndarray, landmarks: Landmarks):
    """Row chunks of a block whose C is about ``_CHUNK_BYTES``."""
    width = max(landmarks.n_landmarks, 1) * X_block.dtype.itemsize
    rows = max(256, _CHUNK_BYTES // width)
    return (X_block[i:i + rows] for i in range(0, max(X_block.shape[0], 1), rows))


def block_column_sums(X_block: np.ndarray, landmarks: Landmarks, kernel: Kernel) -> np.ndarray:
    """Pass 1 for one block: Cᵀ1, (m,) float64."""
    s = np.zeros(landmarks.n_landmarks)
    for chunk in _chunks(X_block, landmarks):
        s += np.asarray(kernel.cross(chunk, landmarks).sum(axis=0), dtype=np.float64).ravel()
    return s


def _degrees(C, degree_weights: np.ndarray) -> np.ndarray:
    t = degree_weights.astype(C.dtype, copy=False)
    return np.asarray(C @ t).ravel()


def _inv_sqrt(d: np.ndarray, degree_floor: float) -> np.ndarray:
    """1/√d in float64, degrees clipped to the floor first.

    Degrees can be ≤ 0 for a signed or indefinite kernel, and underflow for a narrow rbf:
    clipping to a positive floor (counted by pass 2) keeps 1/√d finite. The embedding pass and
    the kernel cache both take 1/√d from here, so they agree to the last bit.
    """
    return 1.0 / np.sqrt(np.maximum(d.astype(np.float64), degree_floor))


def block_gram(
    X_block: np.ndarray,
    landmarks: Landmarks,
    kernel: Kernel,
    degree_weights: np.ndarray,
    degree_floor: float,
    normalizer: np.ndarray,
    diagonal: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Pass 2 for one block: the Gram partial F̃ᵀF̃ and degree statistics.

    Returns
    -------
    gram : ndarray (r, r) float64
    stats : ndarray (4,) float64
        ``[n_clipped, min degree, max degree, sum of degrees]`` before clipping.
    """
    acc = _GramAccumulator(degree_weights, degree_floor, normalizer, diagonal)
    for chunk in _chunks(X_block, landmarks):
        acc.add(kernel.cross(chunk, landmarks))
    return acc.result()


#: Largest condition number of the kept landmark kernel for which the Gram is accumulated as
#: Sᵀ(CᵀD⁻¹C)S in float64 (error ≈ eps64·κ ≤ 2e-10 of ‖G‖); above it, as F̃ᵀF̃ (see below).
_SANDWICH_MAX_COND = 1e6
#: Rows per float64 piece of the CᵀD⁻¹C accumulation (a 2048 × m buffer stays in cache).
_GRAM_CHUNK_ROWS = 2048


class _GramAccumulator:
    """Pass 2 over one block, a chunk of C at a time: degrees, their statistics, the Gram.

    Dense C: when W is well conditioned, G = Sᵀ(BᵀB)S with B = D^{-1/2}C and BᵀB accumulated
    in float64 (a syrk per chunk, n·m² flops); its round-off, eps64·‖BᵀB‖, grows by at most κ
    in G, so G is exact to ~1e-10, at half the cost of the F̃ route. An ill-conditioned W takes
    the F̃ route: F̃ = B S first, then F̃ᵀF̃ (2·n·m·r + n·r² flops), whose round-off grows only
    by 1/√λ_min instead of 1/λ_min. Sparse C (the landmark graph): BᵀB from n·r² work.
    """

    def __init__(self, degree_weights, degree_floor, normalizer, diagonal):
        self.t, self.floor, self.S, self.diagonal = (degree_weights, degree_floor, normalizer,
                                                     diagonal)
        col = np.linalg.norm(normalizer, axis=0)  # 1/√λ_j: κ of the kept W is (max/min)²
        self.sandwich = diagonal or (col.size > 0 and
                                     (col.max() / col.min()) ** 2 <= _SANDWICH_MAX_COND)
        self.total: np.ndarray | None = None  # BᵀB (m, m) for the sandwich, else F̃ᵀF̃ (r, r)
        self.stats = np.array([0.0, np.inf, -np.inf, 0.0])

    def add(self, C) -> np.ndarray:
        """Account for one chunk of C; returns its 1/√d."""
        d = _degrees(C, self.t)  # (rows,)
        st = self.stats
        st[0] += np.count_nonzero(d < self.floor)
        st[1] = min(st[1], d.min(initial=np.inf))
        st[2] = max(st[2], d.max(initial=-np.inf))
        st[3] += d.sum(dtype=np.float64)
        inv_sqrt_d = _inv_sqrt(d, self.floor)
        if sparse.issparse(C):
            B = sparse.diags(inv_sqrt_d.astype(C.dtype)) @ C
            self._add((B.T @ B).toarray().astype(np.float64))
        elif self.sandwich:
            self._syrk(C, inv_sqrt_d)
        else:
            F = (C * inv_sqrt_d[:, None].astype(C.dtype)) @ self.S.astype(C.dtype)  # (rows, r)
            self._add((F.T @ F).astype(np.float64))
        return inv_sqrt_d.astype(C.dtype)

    def _add(self, part: np.ndarray) -> None:
        self.total = part if self.total is None else self.total + part

    def _syrk(self, C: np.ndarray, inv_sqrt_d: np.ndarray) -> None:
        """BᵀB += (D^{-1/2}C)ᵀ(D^{-1/2}C), accumulated in float64.

        Each piece is scaled and widened to float64 in one pass into a small reused buffer,
        then ``piece.T @ piece`` (numpy hands that to BLAS syrk): no n × m float64 copy. This
        beat scipy's ``dsyrk`` with β = 1 here by 14-27 % (benchmarks/profile.md).
        """
        m = C.shape[1]
        if self.total is None:
            self.total = np.zeros((m, m))
        rows = min(_GRAM_CHUNK_ROWS, C.shape[0])
        buf = np.empty((rows, m))
        for i in range(0, C.shape[0], rows):
            piece = np.multiply(C[i:i + rows], inv_sqrt_d[i:i + rows, None],
                                out=buf[:min(rows, C.shape[0] - i)])
            self.total += piece.T @ piece

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        S = self.S
        if self.total is None:
            return np.zeros((S.shape[1], S.shape[1])), self.stats
        if not self.sandwich:
            return self.total, self.stats
        H = self.total
        if self.diagonal:
            rows = np.argmax(S != 0, axis=0)
            w = S[rows, np.arange(S.shape[1])]
            return H[np.ix_(rows, rows)] * np.outer(w, w), self.stats
        return S.T @ H @ S, self.stats


def _gram_from_cross(C, degree_weights, degree_floor, normalizer, diagonal):
    """:func:`block_gram` from the block's C; also returns 1/√d for the embedding pass."""
    acc = _GramAccumulator(degree_weights, degree_floor, normalizer, diagonal)
    inv_sqrt_d = acc.add(C)
    gram, stats = acc.result()
    return gram, stats, inv_sqrt_d


def _cross_and_sums(X_block, landmarks, kernel):
    """Pass 1 keeping C: the block's C (filled a cache-sized chunk at a time) and Cᵀ1."""
    if kernel.is_graph:
        C = kernel.cross(X_block, landmarks)
        return C, np.asarray(C.sum(axis=0), dtype=np.float64).ravel()
    C = np.empty((X_block.shape[0], landmarks.n_landmarks), dtype=_result_dtype(X_block))
    s = np.zeros(landmarks.n_landmarks)
    start = 0
    for chunk in _chunks(X_block, landmarks):
        part = kernel.cross(chunk, landmarks, out=C[start:start + chunk.shape[0]])
        s += part.sum(axis=0, dtype=np.float64)
        start += chunk.shape[0]
    return C, s


class KernelCache:
    """The row blocks of C = κ(X, L) kept in memory between the three passes.

    With the blocks kept, the kernel is evaluated once instead of three times; the cost is
    n·m values of memory (n·r for the landmark graph), so the cache is used only when that
    fits ``budget`` bytes. The estimator makes one per ``fit`` on in-memory data and drops it
    afterwards; dask input is never cached (its blocks may live on other machines).
    """

    def __init__(self, budget: int):
        self.budget = int(budget)
        self.blocks: list[Any] | None = None
        #: 1/√d of each block's rows, from pass 2 (what the embedding needs besides C).
        self.inv_sqrt_degrees: list[np.ndarray] | None = None

    def admits(self, X: np.ndarray, landmarks: Landmarks, kernel: Kernel) -> bool:
        """Whether C for all of X fits the budget (estimated before it is computed)."""
        n, itemsize = X.shape[0], _result_dtype(X).itemsize
        if kernel.is_graph:
            per_row = kernel.params["n_neighbors"] * (itemsize + 4)
        else:
            per_row = landmarks.n_landmarks * itemsize
        return n * per_row <= self.budget

    def clear(self) -> None:
        self.blocks = self.inv_sqrt_degrees = None


def kernel_cache_budget() -> int:
    """Bytes the kernel cache may use: ``dask.config`` key ``spectral_core.kernel-cache``.

    Defaults to a quarter of physical memory; set it to ``0`` (or the environment variable
    ``DASK_SPECTRAL_CORE__KERNEL_CACHE=0``) to evaluate the kernel in every pass instead.
    """
    value = dask.config.get("spectral_core.kernel-cache", None)
    if value is None:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
        except (ValueError, OSError, AttributeError):  # not POSIX: be conservative
            return 2**30
    return int(parse_bytes(value)) if isinstance(value, str) else int(value)


def landmark_normalizer(
    W: np.ndarray | None, column_sums: np.ndarray, dtype: np.dtype
) -> tuple[np.ndarray, bool, np.ndarray]:
    """S (m, r) from the landmark kernel W, or from the graph's column sums when W is None.

    Returns ``(S, diagonal, eigenvalues)`` with the eigenvalues of W (or the column sums)
    in descending order. Eigenvalues below ``rcond·λ_max`` (rcond = max(m·eps, 1e-10), eps of
    the compute dtype) are treated as zero: the Nyström pseudo-inverse keeps the positive,
    numerically meaningful part of W (an indefinite kernel such as sigmoid has negative ones).
    """
    m = column_sums.shape[0]
    if W is None:
        s = column_sums
        order = np.argsort(s)[::-1]
        keep = np.flatnonzero(s > 0)
        S = np.zeros((m, keep.size))
        S[keep, np.arange(keep.size)] = 1.0 / np.sqrt(s[keep])
        return S, True, s[order]
    lam, V = linalg.eigh(W)
    lam, V = lam[::-1], V[:, ::-1]
    rcond = max(m * np.finfo(dtype).eps, _RCOND_FLOOR)
    top = lam[0] if lam.size else 0.0
    r = int(np.count_nonzero(lam > rcond * top)) if top > 0 else 0
    S = V[:, :r] / np.sqrt(lam[:r])
    return S, False, lam


def kernel_blocks(
    X: Any,
    landmarks: Landmarks,
    kernel: Kernel,
    *,
    min_rank: int = 1,
    cache: KernelCache | None = None,
) -> KernelSummary:
    """Stage 2: the landmark kernel, then two passes over the row blocks of X.

    Pass 1 accumulates the column sums s = Cᵀ1, from which the approximate degrees
    d = C M s follow; pass 2 accumulates G = F̃ᵀF̃ with F̃ = D^{-1/2} C S. Nothing n-sized is
    kept: the embedding pass recomputes each degree from its block of C.

    Parameters
    ----------
    X : ndarray or dask array of shape (n, d)
    landmarks : Landmarks
    kernel : Kernel
    min_rank : int
        Fail early (before the passes) when the landmark kernel has fewer positive
        eigenvalues than this, typically ``n_clusters``.
    cache : KernelCache, optional
        When given and C fits its budget, pass 1 keeps the blocks of C there and pass 2 (and
        then :func:`embed`, given the same cache) reuse them instead of evaluating the kernel
        again.

    Returns
    -------
    KernelSummary

    Raises
    ------
    ValueError
        If the landmark kernel is not finite or has rank < ``min_rank``.
    """
    dtype = _result_dtype(X)
    prepared = prepare_landmark_kernel(landmarks, kernel, dtype=dtype, min_rank=min_rank)
    keep = cache is not None and not isinstance(X, da.Array) \
        and cache.admits(X, landmarks, kernel)
    # Pass 1: s = Cᵀ1.
    if keep:
        parts = map_over_rows(_cross_and_sums, X, landmarks, kernel)
        cache.blocks = [C for C, _ in parts]
        s = sum_in_order([s for _, s in parts])
        del parts
    else:
        s = sum_in_order(map_over_rows(block_column_sums, X, landmarks, kernel))
    weights = degree_weights(s, prepared, kernel, n_samples=X.shape[0], dtype=dtype,
                             min_rank=min_rank)
    # Pass 2: G = F̃ᵀF̃ and degree statistics.
    args = (weights.degree_weights, weights.degree_floor, weights.normalizer, weights.diagonal)
    if keep:
        results = map_parts(_gram_from_cross, cache.blocks, *args)
        cache.inv_sqrt_degrees = [inv for _, _, inv in results]
    else:
        results = map_over_rows(block_gram, X, landmarks, kernel, *args)
    return summarize_kernel_blocks(
        weights, [r[0] for r in results], [r[1] for r in results], kernel, n_samples=X.shape[0]
    )


def map_over_rows(func, X: Any, landmarks: Landmarks, *args: Any) -> list[Any]:
    """``func(block, landmarks, *args)`` for every row block of X, in order.

    numpy: blocks of ~32 MB on the local threads (``n_jobs``); dask: one task per chunk on
    the current scheduler, so the data stays where it is.
    """
    if isinstance(X, da.Array):
        X = as_blocks(X)
        return list(dask.compute(*map_blocks_delayed(func, X, landmarks, *args)))
    blocks = split_rows(X, block_rows_for(X.shape[1], landmarks.n_landmarks))
    return map_parts(func, blocks, landmarks, *args)


@dataclass(frozen=True)
class DegreeWeights:
    """What pass 2 and the embedding need from pass 1: S, t and the degree floor."""

    column_sums: np.ndarray
    normalizer: np.ndarray
    diagonal: bool
    landmark_eigenvalues: np.ndarray
    degree_weights: np.ndarray
    degree_floor: float


def prepare_landmark_kernel(
    landmarks: Landmarks, kernel: Kernel, *, dtype: np.dtype, min_rank: int = 1
) -> tuple[np.ndarray, bool, np.ndarray] | None:
    """Before pass 1: W = κ(L, L), its checks and its normalizer S (None for the graph).

    Raises early -- before any pass over the data -- when W is not finite or its positive
    part has rank < ``min_rank``; warns when W is degenerate (≈ I or ≈ all ones).
    """
    W = kernel.landmark_gram(landmarks)  # (m, m), small and eager
    if W is None:
        return None
    if not np.all(np.isfinite(W)):
        raise ValueError(_overflow_message(kernel, "the landmarks"))
    if W.shape[0] > 1 and not np.any(W[~np.eye(W.shape[0], dtype=bool)]):
        # Every off-diagonal affinity underflowed to exactly 0: each landmark is its own
        # component, and no clustering follows from that (only a warning when merely small).
        raise ValueError(
            f"The affinity {kernel.name!r} with parameters {dict(kernel.params)!r} is exactly 0 "
            "between every pair of landmarks (underflow): the kernel is far too narrow. "
            + _gamma_hint(kernel, landmarks)
        )
    _warn_if_degenerate(W, kernel, landmarks)
    S, diagonal, lam = landmark_normalizer(W, np.zeros(W.shape[0]), dtype)
    _check_rank(S.shape[1], min_rank, kernel, lam)
    return S, diagonal, lam


def degree_weights(
    column_sums: np.ndarray,
    prepared: tuple[np.ndarray, bool, np.ndarray] | None,
    kernel: Kernel,
    *,
    n_samples: int,
    dtype: np.dtype,
    min_rank: int = 1,
) -> DegreeWeights:
    """Between the passes: t = M s, and the floor below which degrees are clipped.

    The floor is ``1e-8`` of the mean degree sᵀt/n (or of ‖s‖‖t‖/n if that mean is not
    positive, as for a signed kernel), so only degrees that are tiny or ≤ 0 are touched.
    """
    s = column_sums
    if not np.all(np.isfinite(s)):
        raise ValueError(_overflow_message(kernel, "the data"))
    if prepared is None:  # the landmark graph: S = Δ^{-1/2} from the column sums
        prepared = landmark_normalizer(None, s, dtype)
        _check_rank(prepared[0].shape[1], min_rank, kernel, prepared[2])
    S, diagonal, lam = prepared
    t = S @ (S.T @ s)  # (m,) = M s
    mean_degree = float(s @ t) / n_samples
    scale = mean_degree if mean_degree > 0 else \
        float(np.linalg.norm(s) * np.linalg.norm(t)) / n_samples
    floor = max(_DEGREE_FLOOR_REL * scale, np.finfo(np.float64).tiny)
    return DegreeWeights(s, S, diagonal, lam, t, floor)


def summarize_kernel_blocks(
    weights: DegreeWeights,
    grams: list[np.ndarray],
    stats: list[np.ndarray],
    kernel: Kernel,
    *,
    n_samples: int,
) -> KernelSummary:
    """After pass 2: reduce the per-block Gram partials and degree statistics, in order."""
    G = sum_in_order(grams)
    st = np.asarray(stats, dtype=np.float64).reshape(-1, 4)
    n_clipped = int(st[:, 0].sum())
    summary = KernelSummary(
        column_sums=weights.column_sums,
        normalizer=weights.normalizer,
        diagonal=weights.diagonal,
        degree_weights=weights.degree_weights,
        degree_floor=weights.degree_floor,
        gram=0.5 * (G + G.T),
        landmark_eigenvalues=weights.landmark_eigenvalues,
        n_samples=int(n_samples),
        n_clipped=n_clipped,
        degree_min=float(st[:, 1].min()),
        degree_max=float(st[:, 2].max()),
        degree_mean=float(st[:, 3].sum() / n_samples),
    )
    if n_clipped:
        floor = weights.degree_floor
        warnings.warn(
            f"{n_clipped} of {n_samples} samples have an approximate degree ≤ {floor:.3g} "
            f"(minimum {summary.degree_min:.3g}); they were clipped to {floor:.3g}. "
            + _clipping_advice(kernel),
            DegreeClippingWarning,
            stacklevel=3,
        )
    return summary


def _overflow_message(kernel: Kernel, where: str) -> str:
    return (
        f"The affinity {kernel.name!r} with parameters {dict(kernel.params)!r} gives non-finite "
        f"values on {where} (overflow?). Use a smaller 'gamma' or 'degree', or scale X."
    )


def _check_rank(r: int, min_rank: int, kernel: Kernel, lam: np.ndarray) -> None:
    if r < min_rank:
        raise ValueError(
            f"The landmark affinity ({kernel.name!r}) has only {r} numerically positive "
            f"eigenvalues (largest: {np.round(lam[:3], 6).tolist()}), fewer than "
            f"n_clusters={min_rank}. Use more distinct landmarks (n_components), another "
            "'gamma', or another affinity."
        )


def _clipping_advice(kernel: Kernel) -> str:
    if kernel.name in ("rbf", "laplacian", "chi2"):
        return "The kernel is too narrow for these rows (outliers?): try a smaller 'gamma'."
    if kernel.name in ("linear", "sigmoid", "poly", "polynomial", "cosine"):
        return (
            f"The {kernel.name!r} affinity can be negative, so degrees can be too: prefer a "
            "non-negative affinity such as 'rbf' or 'nearest_neighbors'."
        )
    return "Check that the affinity is non-negative."


def _warn_if_degenerate(W: np.ndarray, kernel: Kernel, landmarks: Landmarks) -> None:
    """Warn when W ≈ I (kernel too narrow) or W ≈ all ones (too wide), suggesting a gamma."""
    if kernel.name not in ("rbf", "laplacian") or W.shape[0] < 2:
        return
    off = W[~np.eye(W.shape[0], dtype=bool)]
    if off.max() < 1e-3:
        problem = "nearly the identity: every landmark is unrelated to every other"
    elif off.min() > 0.999:
        problem = "nearly all ones: every landmark looks like every other"
    else:
        return
    warnings.warn(
        f"The {kernel.name!r} kernel with gamma={kernel.params.get('gamma')!r} is {problem}, so "
        f"the clustering carries no information. {_gamma_hint(kernel, landmarks)}",
        DegenerateKernelWarning,
        stacklevel=3,
    )


def _gamma_hint(kernel: Kernel, landmarks: Landmarks) -> str:
    """'Try gamma ≈ 1 / median landmark distance' (squared for rbf, L1 for laplacian)."""
    if kernel.name not in ("rbf", "laplacian") or landmarks.points.shape[0] < 2:
        return "Use a smaller 'gamma' or scale X."
    P = landmarks.points.astype(np.float64)
    if kernel.name == "rbf":
        dist = ((P[:, None, :] - P[None, :, :]) ** 2).sum(-1)
    else:
        dist = np.abs(P[:, None, :] - P[None, :, :]).sum(-1)
    med = np.median(dist[~np.eye(P.shape[0], dtype=bool)])
    if med <= 0:
        return "The landmarks are identical: the data has too few distinct rows."
    return f"Try gamma ≈ {1.0 / med:.3g} (1 / median landmark distance)."


# --------------------------------------------------------------------------------------------
# Stage 3: eigendecomposition (small, r × r)
# --------------------------------------------------------------------------------------------


def eigendecompose(
    summary: KernelSummary,
    n_clusters: int,
    *,
    eigen_solver: str | None = None,
    eigen_tol: float = 0.0,
    random_state: int | np.random.RandomState | None = None,
) -> EigenResult:
    """Stage 3: top ``n_clusters`` eigenpairs of G, and the projection P.

    Parameters
    ----------
    summary : KernelSummary
    n_clusters : int
    eigen_solver : {None, 'arpack', 'lobpcg', 'amg'}
        None: dense LAPACK (``scipy.linalg.eigh``); 'arpack': ``scipy.sparse.linalg.eigsh``;
        'lobpcg': ``scipy.sparse.linalg.lobpcg``; 'amg': LOBPCG preconditioned by pyamg's
        smoothed aggregation on the shifted Laplacian. Iterative solvers fall back to dense
        when the problem is too small for them (r < 5·k + 1), as scikit-learn does.
    eigen_tol : float
        Stopping tolerance of the iterative solvers; 0 means each solver's default.
    random_state : int, RandomState or None
        Seeds the iterative solvers' starting vectors.

    Returns
    -------
    EigenResult
    """
    G = summary.gram
    r, k = G.shape[0], n_clusters
    if k > r:
        raise ValueError(f"n_clusters={k} exceeds the rank {r} of the approximated affinity.")
    rng = check_random_state(random_state)
    solver = eigen_solver
    if (solver in ("lobpcg", "amg") and r < 5 * k + 1) or (solver == "arpack" and k >= r):
        logger.debug("eigendecompose: r=%d too small for %s, using dense eigh", r, solver)
        solver = None
    if solver is None:
        sigma, R = linalg.eigh(G, subset_by_index=[r - k, r - 1])
    elif solver == "arpack":
        v0 = rng.uniform(-1, 1, r)
        sigma, R = eigsh(G, k=k, which="LA", tol=eigen_tol, v0=v0)
    elif solver == "lobpcg":
        X0 = rng.standard_normal((r, k))
        sigma, R = lobpcg(G, X0, largest=True, tol=eigen_tol or None, maxiter=2000)
    elif solver == "amg":
        sigma, R = _amg_eigs(G, k, eigen_tol, rng)
    else:  # validated by the estimator; kept for direct callers
        raise ValueError(f"Unknown eigen_solver {eigen_solver!r}.")
    order = np.argsort(sigma)[::-1]
    sigma, R = np.asarray(sigma)[order], np.asarray(R)[:, order]
    # Deterministic signs: the largest-magnitude entry of each eigenvector is positive.
    signs = np.sign(R[np.argmax(np.abs(R), axis=0), np.arange(k)])
    R = R * np.where(signs == 0, 1.0, signs)
    # G is PSD, so Σ ≥ 0 up to round-off; floor it so Σ^{-1/2} stays finite.
    safe = np.maximum(sigma, np.finfo(np.float64).eps * max(sigma.max(initial=0.0), 1.0))
    P = summary.normalizer @ (R / np.sqrt(safe))  # (m, k)
    return EigenResult(eigenvalues=sigma.copy(), projection=P)


def _amg_eigs(G: np.ndarray, k: int, tol: float, rng: np.random.RandomState):
    try:
        from pyamg import smoothed_aggregation_solver
    except ImportError as exc:  # pragma: no cover - exercised only without pyamg
        raise ImportError(
            "eigen_solver='amg' needs pyamg: install the 'amg' extra "
            "(pip install 'spectral-pipeline[amg]')."
        ) from exc
    # Largest eigenpairs of G are the smallest of the PSD "Laplacian" c·I − G, c ≥ λ_max(G)
    # by Gershgorin, which is what an AMG preconditioner is built for.
    c = float(np.abs(G).sum(axis=1).max())
    L = sparse.csr_matrix(c * np.eye(G.shape[0]) - G)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sparse.SparseEfficiencyWarning)
        ml = smoothed_aggregation_solver(L)
    X0 = rng.standard_normal((G.shape[0], k))
    mu, R = lobpcg(L, X0, M=ml.aspreconditioner(), largest=False, tol=tol or None, maxiter=2000)
    return c - mu, R


# --------------------------------------------------------------------------------------------
# Stage 4: embedding (third pass)
# --------------------------------------------------------------------------------------------


def block_embedding(
    X_block: np.ndarray,
    landmarks: Landmarks,
    kernel: Kernel,
    degree_weights: np.ndarray,
    degree_floor: float,
    projection: np.ndarray,
    normalize: bool = True,
) -> np.ndarray:
    """Pass 3 for one block: U = D^{-1/2} C P, rows scaled to unit length if ``normalize``.

    A row with no affinity to any landmark embeds to zero and stays zero (never NaN).
    """
    parts = []
    for chunk in _chunks(X_block, landmarks):
        C = kernel.cross(chunk, landmarks)  # (rows, m)
        inv_sqrt_d = _inv_sqrt(_degrees(C, degree_weights), degree_floor).astype(C.dtype)
        parts.append(_embedding_from_cross(C, inv_sqrt_d, projection, normalize))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _embedding_from_cross(C, inv_sqrt_d, projection, normalize):
    """U = D^{-1/2} C P from a block's C and its 1/√d, rows normalized if ``normalize``."""
    U = np.asarray(C @ projection.astype(C.dtype)) * inv_sqrt_d[:, None]  # (n_block, k)
    if normalize:
        norms = np.linalg.norm(U, axis=1, keepdims=True)
        U = np.divide(U, norms, out=np.zeros_like(U), where=norms > 0)
    return U


def embed(
    X: Any,
    landmarks: Landmarks,
    kernel: Kernel,
    summary: KernelSummary,
    eigen: EigenResult,
    *,
    normalize: bool = True,
    cache: KernelCache | None = None,
) -> Any:
    """Stage 4: the spectral embedding of every row, (n, k).

    Parameters
    ----------
    X : ndarray or dask array of shape (n, d)
    landmarks, kernel, summary, eigen
        Results of the previous stages.
    normalize : bool
        Scale rows to unit length (Ng, Jordan & Weiss 2001). With ``False`` the columns are
        orthonormal: the top-k eigenvectors of the approximated normalized affinity.
    cache : KernelCache, optional
        The cache :func:`kernel_blocks` filled for this same X: its blocks of C and degrees
        are used instead of evaluating the kernel again.

    Returns
    -------
    ndarray or dask array of shape (n, k)
        A lazy dask array for dask input (compute or persist it once), numpy for numpy input.
    """
    if cache is not None and cache.inv_sqrt_degrees is not None:
        return np.concatenate(map_parts(_embedding_from_cross, cache.blocks,
                                        cache.inv_sqrt_degrees, eigen.projection, normalize))
    return embed_rows(
        X, landmarks, kernel, summary.degree_weights, summary.degree_floor, eigen.projection,
        normalize=normalize,
    )


def embed_rows(
    X: Any,
    landmarks: Landmarks,
    kernel: Kernel,
    degree_weights: np.ndarray,
    degree_floor: float,
    projection: np.ndarray,
    *,
    normalize: bool = True,
) -> Any:
    """:func:`embed` from the arrays it needs; also embeds new rows (out-of-sample)."""
    args = (kernel, degree_weights, degree_floor, projection, normalize)
    if not isinstance(X, da.Array):
        return np.concatenate(map_over_rows(block_embedding, X, landmarks, *args))
    Xb = as_blocks(X)
    k = projection.shape[1]
    dtype = _result_dtype(Xb)
    parts = map_blocks_delayed(block_embedding, Xb, landmarks, *args)
    return da.concatenate(
        [da.from_delayed(p, shape=(nb, k), dtype=dtype)
         for p, nb in zip(parts, Xb.chunks[0], strict=True)],
        axis=0,
    )
