"""Stage ``embed``: the spectral embedding U = D^{-1/2} C P of every row (the third pass)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._blocks import as_blocks, map_blocks_delayed, map_over_rows, map_threads
from ._eigen import EigenResult
from ._kernel_blocks import KeptKernel, KernelSummary, degrees, inv_sqrt_degrees
from ._kernels import Kernel, _result_dtype
from ._landmarks import Landmarks
from ._utils import is_dask_array


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

    Parameters
    ----------
    X_block : ndarray of shape (rows, d)
        One block of rows.
    landmarks, kernel
        Those of the passes.
    degree_weights, degree_floor : ndarray of shape (m,), float
        From the :class:`~spectral_core.KernelSummary`.
    projection : ndarray of shape (m, k)
        P, from the :class:`~spectral_core.EigenResult`.
    normalize : bool, default=True
        Scale each row to unit length (Ng, Jordan and Weiss).

    Returns
    -------
    ndarray of shape (rows, k)

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core import eigendecompose, embed, kernel_blocks
    >>> from spectral_core.blocks import block_embedding
    >>> summary, _ = kernel_blocks(X, L, kernel)
    >>> eigen = eigendecompose(summary, 3)
    >>> U = np.vstack([block_embedding(B, L, kernel, summary.degree_weights,
    ...                                summary.degree_floor, eigen.projection)
    ...                for B in (X[:150], X[150:])])
    >>> U.shape, bool(np.allclose(U, embed(X, L, kernel, summary, eigen)))
    ((300, 3), True)
    """
    parts = []
    for C in kernel.tiles(X_block, landmarks):  # (rows, m), a cache-sized tile
        inv_sqrt_d = None if normalize else \
            inv_sqrt_degrees(degrees(C, degree_weights), degree_floor).astype(C.dtype)
        parts.append(_embedding_from_cross(C, inv_sqrt_d, projection, normalize))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _embedding_from_cross(C, inv_sqrt_d, projection, normalize):
    """U = D^{-1/2} C P from a block's C, rows normalized if ``normalize``.

    Row normalization divides each row by its length, so the positive factor 1/√d of the
    row cancels: a normalized embedding needs neither the degrees nor ``inv_sqrt_d``
    (which may be None then), only C P.
    """
    U = np.asarray(C @ projection.astype(C.dtype))  # (n_block, k)
    if not normalize:
        return U * inv_sqrt_d[:, None]
    norms = np.sqrt(np.einsum("ij,ij->i", U, U))[:, None]
    return np.divide(U, norms, out=np.zeros_like(U), where=norms > 0)


def embed(
    X: Any,
    landmarks: Landmarks,
    kernel: Kernel,
    summary: KernelSummary,
    eigen: EigenResult,
    *,
    normalize: bool = True,
    kept: KeptKernel | None = None,
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
    kept : KeptKernel, optional
        What :func:`kernel_blocks` kept for this same X: its blocks of C and degrees are used
        instead of evaluating the kernel again.

    Returns
    -------
    ndarray or dask array of shape (n, k)
        A lazy dask array for dask input (compute or persist it once), numpy for numpy input.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import eigendecompose, kernel_blocks, make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> kernel = make_kernel("rbf", gamma=0.5)
    >>> L = sample_landmarks(X, 30, random_state=0)
    >>> summary, kept = kernel_blocks(X, L, kernel)
    >>> U = embed(X, L, kernel, summary, eigendecompose(summary, 3), normalize=False)
    >>> U.shape, bool(np.allclose(U.T @ U, np.eye(3)))
    ((300, 3), True)
    """
    if kept is not None:
        return np.concatenate(map_threads(_embedding_from_cross, kept.blocks,
                                          kept.inv_sqrt_degrees, eigen.projection, normalize))
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
    """:func:`embed` from the arrays it needs; also embeds new rows (out-of-sample).

    Parameters
    ----------
    X : ndarray or dask array of shape (n, d)
        Rows to embed: those the stages ran on, or new ones.
    landmarks, kernel, degree_weights, degree_floor, projection, normalize
        As for :func:`block_embedding`.

    Returns
    -------
    ndarray or dask array of shape (n, k)

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core import eigendecompose, kernel_blocks
    >>> from spectral_core.blocks import embed_rows
    >>> summary, _ = kernel_blocks(X, L, kernel)
    >>> eigen = eigendecompose(summary, 3)
    >>> new = np.zeros((2, 2))  # two rows the stages never saw
    >>> embed_rows(new, L, kernel, summary.degree_weights, summary.degree_floor,
    ...            eigen.projection).shape
    (2, 3)
    """
    args = (kernel, degree_weights, degree_floor, projection, normalize)
    if not is_dask_array(X):
        return np.concatenate(map_over_rows(block_embedding, X, landmarks, *args))
    import dask.array as da

    Xb = as_blocks(X)
    k = projection.shape[1]
    dtype = _result_dtype(Xb)
    parts = map_blocks_delayed(block_embedding, Xb, landmarks, *args)
    return da.concatenate(
        [da.from_delayed(p, shape=(nb, k), dtype=dtype)
         for p, nb in zip(parts, Xb.chunks[0], strict=True)],
        axis=0,
    )
