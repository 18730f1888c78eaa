"""Row blocks: how n-sized work is split, where it runs, and how partials are combined.

Every n-sized quantity is computed block by block over rows. In-memory (numpy) data is cut
into blocks of about 32 MB of C and mapped over local threads (``n_jobs``); dask data is worked
on chunk by chunk where it lives, one task per chunk. Inside a block, C is evaluated a
cache-sized chunk of rows at a time (:func:`row_chunks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import numpy as np

from ._utils import is_dask_array

if TYPE_CHECKING:
    import dask.array as da

    from ._landmarks import Landmarks

#: Most rows in one block of in-memory data (blocks are ~32 MB of C, and at least 1024 rows).
MAX_BLOCK_ROWS = 65_536


def block_rows_for(n_features: int, n_components: int) -> int:
    """Rows per block so that one block of X and of C stays around 32 MB in float64."""
    width = max(n_features, n_components, 1)
    rows = (32 * 2**20) // (8 * width)
    return int(min(max(rows, 1024), MAX_BLOCK_ROWS))


def as_blocks(X: da.Array) -> da.Array:
    """A dask array chunked by rows only (column chunks merged): one block is whole rows."""
    return X.rechunk({1: -1}) if X.numblocks[1] != 1 else X


def map_blocks_delayed(
    func: Callable[..., Any], X: da.Array, *args: Any
) -> list[Any]:
    """``func(block, *args)`` for every row block of X, as a list of delayed objects.

    Large constant arguments (landmarks, normalizers) are wrapped in one delayed each, so the
    graph stores them once instead of once per block.
    """
    import dask

    shared = [dask.delayed(a, pure=True) if _delayed_once(a) else a for a in args]
    call = dask.delayed(func, pure=True)
    return [call(block, *shared) for block in X.to_delayed().ravel()]


#: Threads for block work on in-memory (numpy) data; set by the estimator from ``n_jobs``.
_LOCAL_THREADS: ContextVar[int] = ContextVar("spectral_core_local_threads", default=1)


@contextmanager
def local_threads(n: int) -> Iterator[None]:
    """Run in-memory block work on ``n`` threads inside this context."""
    token = _LOCAL_THREADS.set(max(1, int(n)))
    try:
        yield
    finally:
        _LOCAL_THREADS.reset(token)


def split_rows(X: np.ndarray, rows: int) -> list[np.ndarray]:
    """Row blocks of an in-memory X, as views (no copy)."""
    return [X[i:i + rows] for i in range(0, max(X.shape[0], 1), rows)]


def map_threads(func: Callable[..., Any], *args: Any) -> list[Any]:
    """``func(a_i, b_i, ..., *shared)`` for in-memory parts, in order, on local threads.

    List arguments are zipped, the others shared. numpy, BLAS and the kernels release the
    GIL, so threads run the blocks in parallel; no task graph is built, which for in-memory
    data saves dask's start-up (~0.3 s, measured in benchmarks/profile.md) and its per-task
    bookkeeping.
    """
    lists = [a for a in args if isinstance(a, list)]
    n = len(lists[0])

    def one(j: int) -> Any:
        return func(*[a[j] if isinstance(a, list) else a for a in args])

    threads = min(_LOCAL_THREADS.get(), n)
    if threads <= 1:
        return [one(j) for j in range(n)]
    with ThreadPoolExecutor(threads, thread_name_prefix="spectral-core") as pool:
        return list(pool.map(one, range(n)))


def _delayed_once(a: Any) -> bool:
    """Scalars and strings go into each task as they are; anything else once per graph."""
    return not isinstance(a, (int, float, bool, str, type(None)))


def sum_in_order(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Sum block partials in float64, in block order (deterministic for a fixed chunking).

    Parameters
    ----------
    parts : sequence of ndarray
        The partials of every block, in block order.

    Returns
    -------
    ndarray, float64

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core.blocks import sum_in_order
    >>> sum_in_order([np.ones(3, dtype=np.float32), np.arange(3.0)])
    array([1., 2., 3.])
    """
    total = np.zeros_like(np.asarray(parts[0]), dtype=np.float64)
    for p in parts:
        total += p
    return total


#: Bytes of C evaluated at a time inside a block: small enough to stay in cache and below
#: malloc's mmap threshold (32 MB), so the temporaries are reused instead of page-faulted in
#: afresh for every block (measured in benchmarks/profile.md).
_CHUNK_BYTES = 4 * 2**20


def row_chunks(X_block: np.ndarray, landmarks: Landmarks):
    """Row chunks of a block whose C is about ``_CHUNK_BYTES``."""
    width = max(landmarks.n_landmarks, 1) * X_block.dtype.itemsize
    rows = max(256, _CHUNK_BYTES // width)
    return (X_block[i:i + rows] for i in range(0, max(X_block.shape[0], 1), rows))


def map_over_rows(func, X: Any, landmarks: Landmarks, *args: Any) -> list[Any]:
    """``func(block, landmarks, *args)`` for every row block of X, in order.

    numpy: blocks of ~32 MB on the local threads (``n_jobs``); dask: one task per chunk on
    the current scheduler, so the data stays where it is.
    """
    if is_dask_array(X):
        import dask

        X = as_blocks(X)
        return list(dask.compute(*map_blocks_delayed(func, X, landmarks, *args)))
    blocks = split_rows(X, block_rows_for(X.shape[1], landmarks.n_landmarks))
    return map_threads(func, blocks, landmarks, *args)
