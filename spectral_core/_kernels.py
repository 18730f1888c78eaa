"""Affinities between row blocks and landmarks.

Every affinity the estimator accepts is reduced to one object, :class:`Kernel`, with two
operations used by the stages:

* ``kernel.cross(X_block, landmarks)`` -- the ``(n_block, m)`` block of C = κ(X, L), dense for
  kernels and sparse (CSR) for the ``'nearest_neighbors'`` landmark graph;
* ``kernel.tiles(X_block, landmarks)`` -- the same block as cache-sized tiles of rows, written
  into one reused buffer: what the passes over the rows consume (see :meth:`Kernel.tiles`);
* ``kernel.landmark_gram(landmarks)`` -- the small ``(m, m)`` matrix W = κ(L, L), or ``None`` for
  the graph, whose normalizer comes from its column sums instead (see ``_kernel_blocks``).

A kernel is described by JSON-able fields (``affinity`` name and keyword ``params``) so that the
pipeline can record it in checkpoint metadata; a user callable is the one exception.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

try:  # the compiled exp of the rbf kernel (spectral_core/_fastkernels.c)
    from ._fastkernels import rbf_epilogue as _compiled_epilogue
except ImportError:  # installed without a C compiler: numpy's exp, 2-5× slower a value
    _compiled_epilogue = None

__all__ = ["KERNEL_AFFINITIES", "Kernel", "compute_dtype", "make_kernel", "squared_distances"]

#: String affinities that are scikit-learn pairwise kernels: ``sorted(PAIRWISE_KERNEL_FUNCTIONS)``
#: of ``sklearn.metrics.pairwise``, written out so that importing this module does not import
#: scikit-learn's metrics (a test keeps the two equal).
KERNEL_AFFINITIES = ("additive_chi2", "chi2", "cosine", "laplacian", "linear", "poly",
                     "polynomial", "rbf", "sigmoid")
#: Every string affinity the estimator accepts.
AFFINITIES = (*KERNEL_AFFINITIES, "nearest_neighbors", "precomputed")
#: Which of gamma, degree and coef0 each of them takes: scikit-learn's ``KERNEL_PARAMS``
#: (``sklearn.metrics.pairwise``), written out for the same reason (a test keeps them equal):
#: building a kernel, as the pipeline's pre-flight checks do, then loads no scikit-learn.
KERNEL_PARAMS: dict[str, frozenset[str]] = {
    "additive_chi2": frozenset(), "chi2": frozenset({"gamma"}), "cosine": frozenset(),
    "laplacian": frozenset({"gamma"}), "linear": frozenset(),
    "poly": frozenset({"gamma", "degree", "coef0"}),
    "polynomial": frozenset({"gamma", "degree", "coef0"}), "rbf": frozenset({"gamma"}),
    "sigmoid": frozenset({"gamma", "coef0"}),
}


@dataclass(frozen=True)
class Kernel:
    """An affinity, ready to evaluate on row blocks.

    Parameters
    ----------
    affinity : str or callable
        A name from :data:`AFFINITIES` or a callable ``f(X, Y, **params) -> (n_x, n_y)``.
    params : dict
        Keyword arguments passed to the kernel function (already filtered to what it accepts).
        For ``'nearest_neighbors'``: ``{"n_neighbors": r}``.
    """

    affinity: str | Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_graph(self) -> bool:
        return self.affinity == "nearest_neighbors"

    @property
    def is_precomputed(self) -> bool:
        return self.affinity == "precomputed"

    @property
    def name(self) -> str:
        if callable(self.affinity):
            return getattr(self.affinity, "__name__", type(self.affinity).__name__)
        return self.affinity

    def _gamma(self, X: np.ndarray) -> float:
        """gamma, or scikit-learn's default for gamma=None: 1 / n_features."""
        gamma = self.params.get("gamma")
        return 1.0 / X.shape[1] if gamma is None else gamma

    def _evaluate(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        func = self.affinity
        if not callable(func):
            from sklearn.metrics.pairwise import PAIRWISE_KERNEL_FUNCTIONS

            func = PAIRWISE_KERNEL_FUNCTIONS[func]
        K = np.asarray(func(X, Y, **self.params))
        if K.shape != (X.shape[0], Y.shape[0]):
            raise ValueError(
                f"The affinity {self.name!r} must return an array of shape "
                f"(n_samples_X, n_samples_Y) = {(X.shape[0], Y.shape[0])}. "
                f"Got shape {K.shape} instead."
            )
        return K.astype(_result_dtype(X), copy=False)

    def cross(self, X_block: np.ndarray, landmarks, out: np.ndarray | None = None
              ) -> np.ndarray | sparse.csr_matrix:
        """C for one row block: ``(n_block, m)``, in the block's float dtype.

        ``out`` (dense kernels only): write C there instead of into a new array.
        """
        if out is not None:
            if self.affinity == "rbf":
                return rbf_cross(X_block, landmarks.points, self._gamma(X_block), out=out)
            out[...] = self.cross(X_block, landmarks)
            return out
        if self.is_precomputed:
            # X is the n×n affinity: only the landmark columns are read.
            return np.ascontiguousarray(X_block[:, landmarks.indices], dtype=_result_dtype(X_block))
        if self.is_graph:
            return landmark_graph(X_block, landmarks.points, self.params["n_neighbors"])
        if self.affinity == "rbf":
            return rbf_cross(X_block, landmarks.points, self._gamma(X_block))
        return self._evaluate(X_block, landmarks.points)

    def tiles(self, X_block: np.ndarray, landmarks, *, sums: np.ndarray | None = None):
        """C for one row block, one cache-sized tile of rows at a time, in row order.

        Every pass over the rows consumes C this way. For the rbf kernel the landmarks' side
        of the distance GEMM is prepared once per block, and each tile is written into the
        same buffer (each tile is valid until the next one is produced): one GEMM and one
        compiled pass of clip, ``exp`` and column sums per tile, no temporary of the block's
        size. ``sums`` (float64, (m,)): each tile's column sums are added to it.
        """
        from ._blocks import row_chunks

        chunks = row_chunks(X_block, landmarks)
        if self.affinity != "rbf" or X_block.shape[0] == 0:
            for chunk in chunks:
                C = self.cross(chunk, landmarks)
                if sums is not None:
                    sums += np.asarray(C.sum(axis=0), dtype=np.float64).ravel()
                yield C
            return
        side = _DistanceSide(landmarks.points, self._gamma(X_block), _result_dtype(X_block))
        buffer = None
        for chunk in chunks:
            if buffer is None:
                buffer = np.empty((chunk.shape[0], side.width), dtype=side.dtype)
            yield side.rbf(chunk, out=buffer[:chunk.shape[0]], sums=sums)

    def landmark_gram(self, landmarks) -> np.ndarray | None:
        """W = κ(L, L), ``(m, m)`` float64; ``None`` for the landmark graph."""
        if self.is_graph:
            return None
        if self.is_precomputed:
            W = np.asarray(landmarks.points, dtype=np.float64)
        else:
            W = self._evaluate(landmarks.points, landmarks.points).astype(np.float64)
        # Symmetrize: kernels are symmetric in exact arithmetic; a precomputed matrix or a
        # user callable may be off by round-off (or more, which we do not try to fix).
        return 0.5 * (W + W.T)


def compute_dtype(dtypes) -> np.dtype:
    """The float dtype the math runs in: float32 when every input column is, else float64.

    The one rule for the estimator (numpy or dask input) and the pipeline (Parquet columns).

    Parameters
    ----------
    dtypes : iterable of numpy.dtype
        The dtypes of the input's feature columns.

    Returns
    -------
    numpy.dtype

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core.blocks import compute_dtype
    >>> compute_dtype([np.dtype("float32")] * 3), compute_dtype([np.float32, np.int64])
    (dtype('float32'), dtype('float64'))
    """
    dtypes = [np.dtype(d) for d in dtypes]
    if dtypes and all(d == np.float32 for d in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _result_dtype(X) -> np.dtype:
    return compute_dtype([X.dtype])


class _DistanceSide:
    """The landmarks' side of ``offset - scale·‖x - y‖²`` as one GEMM, prepared once.

    Both sides are centred on Y's mean (distances do not change), so the expansion
    ‖x‖² + ‖y‖² - 2xᵀy cancels little for data far from the origin; the norms ride along as
    two extra columns, so the GEMM writes the finished (n_x, n_y) result and nothing else
    passes over it. In float32 the absolute error is about eps32·scale·(‖x-μ‖² + ‖y-μ‖²):
    a relative error of ~1e-6 in an rbf value, against ~1e-7 for scikit-learn's upcasting
    ``euclidean_distances``, which costs twice as much (measured, benchmarks/profile.md).
    """

    def __init__(self, Y: np.ndarray, scale: float, dtype: np.dtype, offset: float = 0.0):
        self.dtype = np.dtype(dtype)
        self.scale = scale
        # One centre, in the working dtype, for both sides: x - μ and y - μ are then exact for
        # rows near μ (Sterbenz), and their difference is exactly x - y's.
        self.mu = Y.mean(axis=0, dtype=np.float64).astype(self.dtype)
        Yc = np.subtract(Y, self.mu, dtype=self.dtype)
        d = Y.shape[1]
        self.B = np.empty((d + 2, Y.shape[0]), dtype=self.dtype)  # (d + 2, m)
        self.B[:d] = (2.0 * scale) * Yc.T
        self.B[d] = -scale
        self.B[d + 1] = offset - scale * np.einsum("ij,ij->i", Yc, Yc)
        self.width = Y.shape[0]

    def distances(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``offset - scale·‖x - y‖²`` for the rows of X, (n_x, m), in the working dtype."""
        n_x, d = X.shape
        A = np.empty((n_x, d + 2), dtype=self.dtype)  # (n_x, d + 2): [x - μ, ‖x - μ‖², 1]
        Xc = np.subtract(X, self.mu, out=A[:, :d], dtype=self.dtype)
        A[:, d] = np.einsum("ij,ij->i", Xc, Xc)
        A[:, d + 1] = 1.0
        return np.matmul(A, self.B, out=out)

    def rbf(self, X: np.ndarray, out: np.ndarray | None = None,
            sums: np.ndarray | None = None) -> np.ndarray:
        """exp(-scale·‖x - y‖²) for the rows of X (see :func:`rbf_cross`)."""
        E = self.distances(X, out=out)
        if _compiled_epilogue is not None:
            _compiled_epilogue(E, sums)
            return E
        np.minimum(E, 0.0, out=E)
        np.exp(E, out=E)
        if sums is not None:
            sums += E.sum(axis=0, dtype=np.float64)
        return E


def squared_distances(X: np.ndarray, Y: np.ndarray, *, scale: float = 1.0,
                      offset: float = 0.0, out: np.ndarray | None = None) -> np.ndarray:
    """``offset - scale·‖x - y‖²`` for every row pair, as one GEMM, in X's float dtype.

    See :class:`_DistanceSide` for how the expansion is kept accurate.
    """
    return _DistanceSide(Y, scale, _result_dtype(X), offset).distances(X, out=out)


def rbf_cross(X: np.ndarray, Y: np.ndarray, gamma: float,
              out: np.ndarray | None = None, sums: np.ndarray | None = None) -> np.ndarray:
    """exp(-γ‖x - y‖²) for every row pair: one GEMM, then one pass of clip and ``exp``.

    The GEMM writes -γ‖x - y‖² into the output, and one compiled loop over it, while it is
    still in cache, clips round-off above 0 and takes the exponential (and adds each column's
    sum to ``sums``, float64, when given). Equal to scikit-learn's ``rbf_kernel`` to ~1e-14
    in float64 and ~1e-5 in float32 (tested).
    """
    return _DistanceSide(Y, gamma, _result_dtype(X)).rbf(X, out=out, sums=sums)


def landmark_graph(X_block: np.ndarray, points: np.ndarray, n_neighbors: int) -> sparse.csr_matrix:
    """Row-stochastic landmark graph Z for one block: ``(n_block, m)`` CSR.

    Each sample is linked to its ``n_neighbors`` nearest landmarks with Gaussian weights
    exp(-δ²/σ²) whose bandwidth σ is the sample's mean distance to those landmarks (a local,
    self-tuning scale, so no global ``gamma`` is needed), then the row is normalized to sum 1
    (Chen & Cai 2011, "Large scale spectral clustering with landmark-based representation").
    Measured on pendigits and MNIST (3 seeds, m=500, r=5), σ² = mean² beats 2·mean² (ARI
    0.75 vs 0.69 and 0.56 vs 0.54) and a global σ (0.66, 0.55).
    """
    n_block, m = X_block.shape[0], points.shape[0]
    r = n_neighbors
    dtype = _result_dtype(X_block)
    sq = squared_distances(X_block, points, scale=-1.0)  # ‖x - l‖², (n_block, m)
    if r < m:
        nearest = np.argpartition(sq, r - 1, axis=1)[:, :r]
    else:
        nearest = np.tile(np.arange(m), (n_block, 1))
    sq_near = np.maximum(np.take_along_axis(sq, nearest, axis=1), 0.0).astype(np.float64)
    dist = np.sqrt(sq_near)
    sigma = dist.mean(axis=1, keepdims=True)
    # A sample sitting on all its landmarks (σ = 0) gets equal weights, not 0/0.
    sigma = np.where(sigma > 0, sigma, 1.0)
    weights = np.exp(-sq_near / sigma**2)
    weights /= weights.sum(axis=1, keepdims=True)
    indptr = np.arange(0, n_block * r + 1, r)
    Z = sparse.csr_matrix(
        (weights.ravel().astype(dtype), nearest.ravel(), indptr), shape=(n_block, m)
    )
    Z.sort_indices()
    return Z


def _accepted_keywords(func: Callable[..., Any]) -> tuple[set[str], bool]:
    """Keyword names ``func`` accepts beyond (X, Y), and whether it takes ``**kwargs``."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature: pass nothing extra
        return set(), False
    params = list(signature.parameters.values())
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {
        p.name
        for p in params[2:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    return names, var_kw


def make_kernel(
    affinity: str | Callable[..., Any],
    *,
    gamma: float | None = 1.0,
    degree: float = 3,
    coef0: float = 1,
    kernel_params: Mapping[str, Any] | None = None,
    n_neighbors: int = 10,
    owner: str = "SpectralClustering",
) -> Kernel:
    """Build the :class:`Kernel` for an affinity and the estimator's kernel parameters.

    String kernels get ``gamma``, ``degree`` and ``coef0`` exactly where scikit-learn's
    :func:`~sklearn.metrics.pairwise.pairwise_kernels` applies them (``KERNEL_PARAMS``). A
    callable gets those three only when its signature names them, plus ``kernel_params``. A
    keyword that the kernel would not use is an error, never silently dropped.

    Examples
    --------
    >>> from spectral_core import make_kernel
    >>> make_kernel("rbf", gamma=0.5).params
    {'gamma': 0.5}
    >>> make_kernel("rbf", gamma=None).params  # the kernel's default: 1 / n_features
    {}
    >>> make_kernel("nearest_neighbors", n_neighbors=5).params
    {'n_neighbors': 5}
    """
    extra = dict(kernel_params or {})
    if affinity == "nearest_neighbors":
        if extra:
            raise ValueError(
                f"The 'kernel_params' parameter of {owner} is not used by "
                f"affinity='nearest_neighbors'. Got {extra!r} instead; leave it as None."
            )
        return Kernel("nearest_neighbors", {"n_neighbors": int(n_neighbors)})
    if affinity == "precomputed":
        if extra:
            raise ValueError(
                f"The 'kernel_params' parameter of {owner} is not used by "
                f"affinity='precomputed'. Got {extra!r} instead; leave it as None."
            )
        return Kernel("precomputed", {})
    # gamma=None is "the kernel's own default", as in scikit-learn: it is not passed, so
    # rbf, laplacian, polynomial and sigmoid use 1 / n_features and chi2 its 1.0. A callable
    # whose signature names gamma receives None, as dask-ml passes it.
    base = {"gamma": None if gamma is None else float(gamma), "degree": degree,
            "coef0": coef0}
    if callable(affinity):
        names, var_kw = _accepted_keywords(affinity)
        unknown = sorted(set(extra) - names) if not var_kw else []
        if unknown:
            raise ValueError(
                f"The 'kernel_params' parameter of {owner} has keys {unknown} that the "
                f"affinity callable {getattr(affinity, '__name__', affinity)!r} does not accept. "
                f"Got {extra!r} instead."
            )
        # As dask-ml does, a callable taking **kwargs gets gamma, degree and coef0 (gamma may
        # be None); one with a fixed signature gets those it names.
        params = {k: v for k, v in base.items() if var_kw or k in names}
        params.update(extra)
        return Kernel(affinity, params)
    accepted = KERNEL_PARAMS[affinity]
    dup = sorted(set(extra) & set(base))
    if dup:
        raise ValueError(
            f"The 'kernel_params' parameter of {owner} must not repeat {dup}: set them through "
            f"the estimator's own parameters. Got {extra!r} instead."
        )
    if extra:
        raise ValueError(
            f"The 'kernel_params' parameter of {owner} has keys {sorted(extra)} that the "
            f"{affinity!r} kernel does not accept (it takes "
            f"{sorted(accepted) or 'no parameters'}). "
            f"Got {extra!r} instead."
        )
    return Kernel(affinity, {k: v for k, v in base.items()
                             if k in accepted and not (k == "gamma" and v is None)})
