"""Stage ``kernel_blocks``: the landmark kernel, then two passes over the rows of X.

Pass 1 sums the columns of C = κ(X, L), s = Cᵀ1, which gives the degree weights t = M s
(so that the degree of row i is d_i = c_iᵀ t); pass 2 sums the Gram G = F̃ᵀF̃ of the normalized
factor F̃ = D^{-1/2} C S. Both passes are sums of per-block partials, so the flow can run and
checkpoint them one block at a time (see docs/architecture.md for the notation).
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg, sparse

from ._blocks import map_over_rows, map_threads, row_chunks, sum_in_order
from ._kernels import Kernel, _result_dtype
from ._landmarks import Landmarks
from ._messages import (
    DegreeClippingWarning,
    check_rank,
    clipping_advice,
    gamma_hint,
    overflow_message,
    warn_if_degenerate,
)
from ._utils import is_dask_array

#: Landmark-kernel eigenvalues below ``rcond · λ_max`` are treated as zero (not inverted).
_RCOND_FLOOR = 1e-10
#: Degrees below this fraction of the mean degree are clipped (and counted).
_DEGREE_FLOOR_REL = 1e-8


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

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core import kernel_blocks
    >>> summary, _ = kernel_blocks(X, L, kernel)
    >>> summary.gram.shape, summary.rank, summary.n_samples, summary.n_clipped
    ((30, 30), 30, 300, 0)
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
class DegreeWeights:
    """What pass 2 and the embedding need from pass 1: S, t and the degree floor.

    Made by :func:`degree_weights` between the first and second pass over the blocks.

    Attributes
    ----------
    column_sums : ndarray of shape (m,)
        s = Cᵀ1, the column sums of the cross kernel summed over every block.
    normalizer : ndarray of shape (m, r)
        S, with M = S Sᵀ the (pseudo-)inverse of the landmark kernel on its positive part.
    diagonal : bool
        Whether S is diagonal (the landmark graph).
    landmark_eigenvalues : ndarray of shape (m,)
        Eigenvalues of W = κ(L, L), descending (for the graph: the column sums, descending).
    degree_weights : ndarray of shape (m,)
        t = M s, so that the degree of a row c of C is cᵀt.
    degree_floor : float
        Degrees below this are clipped to it.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core.blocks import block_column_sums, degree_weights, prepare_landmark_kernel
    >>> prepared = prepare_landmark_kernel(L, kernel, dtype=X.dtype)
    >>> w = degree_weights(block_column_sums(X, L, kernel), prepared, kernel, n_samples=300,
    ...                    dtype=X.dtype)
    >>> w.degree_weights.shape, w.normalizer.shape, w.diagonal
    ((30,), (30, 30), False)
    """

    column_sums: np.ndarray
    normalizer: np.ndarray
    diagonal: bool
    landmark_eigenvalues: np.ndarray
    degree_weights: np.ndarray
    degree_floor: float


def block_column_sums(X_block: np.ndarray, landmarks: Landmarks, kernel: Kernel) -> np.ndarray:
    """Pass 1 for one block: the column sums Cᵀ1 of its cross kernel C = κ(X_block, L).

    Parameters
    ----------
    X_block : ndarray of shape (rows, d)
        One block of rows.
    landmarks : Landmarks
        From :func:`~spectral_core.sample_landmarks`.
    kernel : Kernel
        From :func:`~spectral_core.make_kernel`.

    Returns
    -------
    ndarray of shape (m,), float64
        Summed over the blocks (:func:`sum_in_order`), s = Cᵀ1 for the whole of X.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core.blocks import block_column_sums, sum_in_order
    >>> s = sum_in_order([block_column_sums(B, L, kernel) for B in (X[:150], X[150:])])
    >>> s.shape, bool(np.allclose(s, block_column_sums(X, L, kernel)))
    ((30,), True)
    """
    s = np.zeros(landmarks.n_landmarks)
    for _ in kernel.tiles(X_block, landmarks, sums=s):
        pass
    return s


def degrees(C, degree_weights: np.ndarray) -> np.ndarray:
    t = degree_weights.astype(C.dtype, copy=False)
    return np.asarray(C @ t).ravel()


def inv_sqrt_degrees(d: np.ndarray, degree_floor: float) -> np.ndarray:
    """1/√d in float64, degrees clipped to the floor first.

    Degrees can be ≤ 0 for a signed or indefinite kernel, and underflow for a narrow rbf:
    clipping to a positive floor (counted by pass 2) keeps 1/√d finite. The embedding pass and
    the kept-kernel route both take 1/√d from here, so they agree to the last bit.
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

    Parameters
    ----------
    X_block : ndarray of shape (rows, d)
        One block of rows.
    landmarks : Landmarks
        The landmarks of pass 1.
    kernel : Kernel
        The kernel of pass 1.
    degree_weights, degree_floor, normalizer, diagonal
        The fields of the :class:`DegreeWeights` that :func:`degree_weights` returned.

    Returns
    -------
    gram : ndarray (r, r) float64
    stats : ndarray (4,) float64
        ``[n_clipped, min degree, max degree, sum of degrees]`` before clipping.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core.blocks import block_column_sums, block_gram, degree_weights
    >>> from spectral_core.blocks import prepare_landmark_kernel
    >>> prepared = prepare_landmark_kernel(L, kernel, dtype=X.dtype)
    >>> w = degree_weights(block_column_sums(X, L, kernel), prepared, kernel, n_samples=300,
    ...                    dtype=X.dtype)
    >>> gram, stats = block_gram(X[:150], L, kernel, w.degree_weights, w.degree_floor,
    ...                          w.normalizer, w.diagonal)
    >>> gram.shape, stats.shape
    ((30, 30), (4,))
    """
    acc = _GramAccumulator(degree_weights, degree_floor, normalizer, diagonal)
    for C in kernel.tiles(X_block, landmarks):
        acc.add(C)
    return acc.result()


#: Largest condition number of the kept landmark kernel for which the Gram is accumulated as
#: Sᵀ(CᵀD⁻¹C)S in float64 (error ≈ eps64·κ ≤ 2e-10 of ‖G‖); above it, as F̃ᵀF̃ (see below).
_SANDWICH_MAX_COND = 1e6
#: Rows per float64 piece of the CᵀD⁻¹C accumulation (a 2048 × m buffer stays in cache).
_GRAM_CHUNK_ROWS = 2048
#: float32 data: BᵀB is summed in float32 over pieces of this many rows, each piece's result
#: added to a float64 total, when the kept W's condition number is at most
#: ``_FLOAT32_GRAM_MAX_COND``: a float32 syrk runs at twice the float64 rate, and measured on
#: 200k float32 blobs (m = 500, κ = 550) G moves by 1.7e-7 of its norm and its top 20
#: eigenvalues by 1e-9 (benchmarks/profile.md), below what float32 kernel values already
#: carry. The error grows with κ, so a worse-conditioned W is summed in float64.
_FLOAT32_GRAM_ROWS = 512
_FLOAT32_GRAM_MAX_COND = 1e4


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
        self.cond = (col.max() / col.min()) ** 2 if col.size else 1.0
        self.sandwich = diagonal or (col.size > 0 and self.cond <= _SANDWICH_MAX_COND)
        self.total: np.ndarray | None = None  # BᵀB (m, m) for the sandwich, else F̃ᵀF̃ (r, r)
        self.stats = np.array([0.0, np.inf, -np.inf, 0.0])

    def add(self, C) -> np.ndarray:
        """Account for one chunk of C; returns its 1/√d."""
        d = degrees(C, self.t)  # (rows,)
        st = self.stats
        st[0] += np.count_nonzero(d < self.floor)
        st[1] = min(st[1], d.min(initial=np.inf))
        st[2] = max(st[2], d.max(initial=-np.inf))
        st[3] += d.sum(dtype=np.float64)
        inv_sqrt_d = inv_sqrt_degrees(d, self.floor)
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

        Each piece is scaled (and, for float64 sums, widened) in one pass into a small reused
        buffer, then ``piece.T @ piece`` (numpy hands that to BLAS syrk): no n × m float64
        copy. This beat scipy's ``dsyrk`` with β = 1 here by 14-27 % (benchmarks/profile.md).
        float32 data with a well-conditioned W is summed in float32 a few hundred rows at a
        time (see ``_FLOAT32_GRAM_MAX_COND``).
        """
        m = C.shape[1]
        if self.total is None:
            self.total = np.zeros((m, m))
        single = C.dtype == np.float32 and self.cond <= _FLOAT32_GRAM_MAX_COND
        rows = min(_FLOAT32_GRAM_ROWS if single else _GRAM_CHUNK_ROWS, C.shape[0])
        buf = np.empty((rows, m), dtype=C.dtype if single else np.float64)
        scale = inv_sqrt_d.astype(buf.dtype)
        for i in range(0, C.shape[0], rows):
            piece = np.multiply(C[i:i + rows], scale[i:i + rows, None],
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
    for chunk in row_chunks(X_block, landmarks):
        part = kernel.cross(chunk, landmarks, out=C[start:start + chunk.shape[0]])
        s += part.sum(axis=0, dtype=np.float64)
        start += chunk.shape[0]
    return C, s


@dataclass(frozen=True)
class KeptKernel:
    """The row blocks of C = κ(X, L) that :func:`kernel_blocks` kept for :func:`embed`.

    Passing them on evaluates the kernel once instead of three times, at the price of n·m
    values of memory (n·r for the landmark graph). n-sized: made for in-memory X only, and
    dropped by the caller once the embedding is computed.

    Attributes
    ----------
    blocks : list of ndarray
        The row blocks of C, in row order.
    inv_sqrt_degrees : list of ndarray
        1/√d of each block's rows, as pass 2 computed them.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core import eigendecompose, embed, kernel_blocks
    >>> summary, kept = kernel_blocks(X, L, kernel, keep_budget=10**8)  # bytes it may keep
    >>> [block.shape for block in kept.blocks]
    [(300, 30)]
    >>> U = embed(X, L, kernel, summary, eigendecompose(summary, 3), kept=kept)
    >>> bool(np.allclose(U, embed(X, L, kernel, summary, eigendecompose(summary, 3))))
    True
    """

    #: C of each row block, in row order: (rows, m) dense, or CSR for the landmark graph.
    blocks: list[Any]
    #: 1/√d of each block's rows, from pass 2 (what the embedding needs besides C).
    inv_sqrt_degrees: list[np.ndarray]


def kept_kernel_bytes(X: np.ndarray, landmarks: Landmarks, kernel: Kernel) -> int:
    """Memory C for all of X would take if kept (estimated before it is computed)."""
    n, itemsize = X.shape[0], _result_dtype(X).itemsize
    if kernel.is_graph:
        return n * kernel.params["n_neighbors"] * (itemsize + 4)
    return n * landmarks.n_landmarks * itemsize


def kernel_cache_budget() -> int | None:
    """Bytes of C the estimator may keep: ``dask.config`` key ``spectral_core.kernel-cache``.

    ``None`` when the key is not set: the estimator then keeps C by kernel and size
    (:func:`choose_cache_budget`), within a quarter of physical memory. Set it
    (``dask.config.set`` or the environment variable ``DASK_SPECTRAL_CORE__KERNEL_CACHE``) to
    a size to keep C whenever it fits, or to ``0`` to evaluate the kernel in every pass. dask
    is not imported for this: when it has not been imported, only the environment variable
    can have set the key.
    """
    if "dask" in sys.modules:
        import dask.config

        value = dask.config.get("spectral_core.kernel-cache", None)
    else:
        value = os.environ.get("DASK_SPECTRAL_CORE__KERNEL_CACHE")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
    if value is None:
        return None
    if isinstance(value, str):
        from dask.utils import parse_bytes

        return int(parse_bytes(value))
    return int(value)


def default_cache_budget() -> int:
    """A quarter of physical memory (1 GiB where that cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):  # not POSIX: be conservative
        return 2**30


#: In-memory rbf fits keep C only up to this size: above it, evaluating the kernel again in
#: each pass was faster than paging a kept C in, wherever measured (1M × 10 blobs at m = 100
#: and 500; 200,000 × 300 at m = 500: 4.8-5.3 s recomputing against 6.2 s keeping, fresh
#: processes on a 2-core AVX2 VM), since the compiled kernel makes a value cost ~2.5 ns.
KEEP_RBF_BELOW_BYTES = 64 * 2**20


def choose_cache_budget(X: Any, landmarks: Landmarks, kernel: Kernel) -> int:
    """The ``keep_budget`` the estimator passes to :func:`kernel_blocks` for in-memory X.

    The configured budget if there is one. Otherwise C is kept (within a quarter of RAM) for
    the landmark graph and every kernel but rbf, whose values cost a neighbour search or many
    flops each (MNIST's 5-NN graph at m = 500: 3.9-4.1 s keeping, 5.2-5.4 s recomputing);
    rbf keeps it only when it is small (:data:`KEEP_RBF_BELOW_BYTES`).
    """
    budget = kernel_cache_budget()
    if budget is not None:
        return budget
    if kernel.is_graph or kernel.affinity != "rbf":
        return default_cache_budget()
    if kept_kernel_bytes(X, landmarks, kernel) <= KEEP_RBF_BELOW_BYTES:
        return default_cache_budget()
    return 0


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
    keep_budget: int = 0,
) -> tuple[KernelSummary, KeptKernel | None]:
    """Stage 2: the landmark kernel, then two passes over the row blocks of X.

    Pass 1 accumulates the column sums s = Cᵀ1, from which the approximate degrees
    d = C M s follow; pass 2 accumulates G = F̃ᵀF̃ with F̃ = D^{-1/2} C S.

    Parameters
    ----------
    X : ndarray or dask array of shape (n, d)
    landmarks : Landmarks
    kernel : Kernel
    min_rank : int
        Fail early (before the passes) when the landmark kernel has fewer positive
        eigenvalues than this, typically ``n_clusters``.
    keep_budget : int
        Bytes of C that may be kept in memory. When X is a numpy array and all of C fits,
        pass 1 keeps its blocks, pass 2 reuses them, and they are returned for :func:`embed`:
        the kernel is evaluated once instead of three times. 0 keeps nothing n-sized (the
        embedding pass then recomputes C block by block); dask input is never kept.

    Returns
    -------
    summary : KernelSummary
    kept : KeptKernel or None
        The blocks of C and their 1/√d, when kept.

    Raises
    ------
    ValueError
        If the landmark kernel is not finite or has rank < ``min_rank``.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> L = sample_landmarks(X, 20, random_state=0)
    >>> summary, kept = kernel_blocks(X, L, make_kernel("rbf", gamma=0.5))
    >>> summary.gram.shape, kept is None
    ((20, 20), True)
    """
    dtype = _result_dtype(X)
    prepared = prepare_landmark_kernel(landmarks, kernel, dtype=dtype, min_rank=min_rank)
    keep = (keep_budget > 0 and not is_dask_array(X)
            and kept_kernel_bytes(X, landmarks, kernel) <= keep_budget)
    # Pass 1: s = Cᵀ1.
    if keep:
        parts = map_over_rows(_cross_and_sums, X, landmarks, kernel)
        blocks = [C for C, _ in parts]
        s = sum_in_order([s for _, s in parts])
        del parts
    else:
        s = sum_in_order(map_over_rows(block_column_sums, X, landmarks, kernel))
    weights = degree_weights(s, prepared, kernel, n_samples=X.shape[0], dtype=dtype,
                             min_rank=min_rank)
    # Pass 2: G = F̃ᵀF̃ and degree statistics.
    args = (weights.degree_weights, weights.degree_floor, weights.normalizer, weights.diagonal)
    if keep:
        results = map_threads(_gram_from_cross, blocks, *args)
        kept = KeptKernel(blocks, [inv for _, _, inv in results])
    else:
        results = map_over_rows(block_gram, X, landmarks, kernel, *args)
        kept = None
    summary = summarize_kernel_blocks(
        weights, [r[0] for r in results], [r[1] for r in results], kernel, n_samples=X.shape[0]
    )
    return summary, kept


def prepare_landmark_kernel(
    landmarks: Landmarks, kernel: Kernel, *, dtype: np.dtype, min_rank: int = 1
) -> tuple[np.ndarray, bool, np.ndarray] | None:
    """Before pass 1: W = κ(L, L), its checks and its normalizer S (None for the graph).

    Raises early -- before any pass over the data -- when W is not finite or its positive
    part has rank < ``min_rank``; warns when W is degenerate (≈ I or ≈ all ones).

    Parameters
    ----------
    landmarks : Landmarks
        From :func:`~spectral_core.sample_landmarks`.
    kernel : Kernel
        From :func:`~spectral_core.make_kernel`.
    dtype : numpy.dtype
        The dtype the math runs in (:func:`compute_dtype`).
    min_rank : int, default=1
        The smallest rank of W's positive part that is accepted (the embedding's width).

    Returns
    -------
    tuple or None
        ``(normalizer, diagonal, landmark_eigenvalues)``, to pass to :func:`degree_weights`;
        None for ``affinity='nearest_neighbors'``, whose normalizer comes from the column
        sums.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core.blocks import prepare_landmark_kernel
    >>> normalizer, diagonal, eigenvalues = prepare_landmark_kernel(L, kernel, dtype=X.dtype)
    >>> normalizer.shape, diagonal, bool(np.all(np.diff(eigenvalues) <= 0))
    ((30, 30), False, True)
    """
    W = kernel.landmark_gram(landmarks)  # (m, m), small and eager
    if W is None:
        return None
    if not np.all(np.isfinite(W)):
        raise ValueError(overflow_message(kernel, "the landmarks"))
    if W.shape[0] > 1 and not np.any(W[~np.eye(W.shape[0], dtype=bool)]):
        # Every off-diagonal affinity underflowed to exactly 0: each landmark is its own
        # component, and no clustering follows from that (only a warning when merely small).
        raise ValueError(
            f"The affinity {kernel.name!r} with parameters {dict(kernel.params)!r} is exactly 0 "
            "between every pair of landmarks (underflow): the kernel is far too narrow. "
            + gamma_hint(kernel, landmarks)
        )
    warn_if_degenerate(W, kernel, landmarks)
    S, diagonal, lam = landmark_normalizer(W, np.zeros(W.shape[0]), dtype)
    check_rank(S.shape[1], min_rank, kernel, lam)
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

    Parameters
    ----------
    column_sums : ndarray of shape (m,)
        s = Cᵀ1 over every block (pass 1, summed with :func:`sum_in_order`).
    prepared : tuple or None
        What :func:`prepare_landmark_kernel` returned.
    kernel : Kernel
        The kernel of pass 1.
    n_samples : int
        Rows of X.
    dtype : numpy.dtype
        The dtype the math runs in.
    min_rank : int, default=1
        As for :func:`prepare_landmark_kernel`.

    Returns
    -------
    DegreeWeights

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core.blocks import block_column_sums, degree_weights, prepare_landmark_kernel
    >>> prepared = prepare_landmark_kernel(L, kernel, dtype=X.dtype)
    >>> w = degree_weights(block_column_sums(X, L, kernel), prepared, kernel, n_samples=300,
    ...                    dtype=X.dtype)
    >>> w.degree_weights.shape, 0 < w.degree_floor < 1e-3
    ((30,), True)
    """
    s = column_sums
    if not np.all(np.isfinite(s)):
        raise ValueError(overflow_message(kernel, "the data"))
    if prepared is None:  # the landmark graph: S = Δ^{-1/2} from the column sums
        prepared = landmark_normalizer(None, s, dtype)
        check_rank(prepared[0].shape[1], min_rank, kernel, prepared[2])
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
    """After pass 2: reduce the per-block Gram partials and degree statistics, in order.

    Parameters
    ----------
    weights : DegreeWeights
        From :func:`degree_weights`.
    grams, stats : list of ndarray
        The two results of :func:`block_gram` for every block, in block order.
    kernel : Kernel
        The kernel of the passes.
    n_samples : int
        Rows of X.

    Returns
    -------
    KernelSummary
        The same as :func:`~spectral_core.kernel_blocks` computes on the whole of X.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core import kernel_blocks
    >>> from spectral_core.blocks import (block_column_sums, block_gram, degree_weights,
    ...                                   prepare_landmark_kernel, sum_in_order,
    ...                                   summarize_kernel_blocks)
    >>> blocks = [X[:150], X[150:]]
    >>> prepared = prepare_landmark_kernel(L, kernel, dtype=X.dtype)
    >>> s = sum_in_order([block_column_sums(B, L, kernel) for B in blocks])
    >>> w = degree_weights(s, prepared, kernel, n_samples=300, dtype=X.dtype)
    >>> parts = [block_gram(B, L, kernel, w.degree_weights, w.degree_floor, w.normalizer,
    ...                     w.diagonal) for B in blocks]
    >>> summary = summarize_kernel_blocks(w, [g for g, _ in parts], [t for _, t in parts],
    ...                                   kernel, n_samples=300)
    >>> bool(np.allclose(summary.gram, kernel_blocks(X, L, kernel)[0].gram))
    True
    """
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
            + clipping_advice(kernel),
            DegreeClippingWarning,
            stacklevel=3,
        )
    return summary
