"""Small shared helpers: stage timing, warnings, block plumbing."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import dask
import dask.array as da
import numpy as np

logger = logging.getLogger("spectral_core")

#: Most rows in one block of in-memory data (blocks are ~32 MB of C, and at least 1024 rows).
MAX_BLOCK_ROWS = 65_536


class DegreeClippingWarning(UserWarning):
    """Some approximate degrees were ≤ 0 (or tiny) and were clipped to a positive floor."""


class DegenerateKernelWarning(UserWarning):
    """The landmark kernel is (nearly) the identity or (nearly) all ones."""


class ZeroEmbeddingWarning(UserWarning):
    """Some rows have an all-zero spectral embedding (no affinity to any landmark)."""


@contextmanager
def stage_timer(stage: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Log how long a stage took (also when it fails) and record it in ``timings``."""
    start = time.perf_counter()
    logger.info("%s: started", stage)
    ok = False
    try:
        yield
        ok = True
    finally:
        elapsed = time.perf_counter() - start
        if timings is not None:
            timings[stage] = elapsed
        logger.info("%s: %s in %.3f s", stage, "done" if ok else "failed", elapsed)


def resolve_n_jobs(n_jobs: int | None) -> int:
    """joblib's convention: None → 1, -1 → all cores, -2 → all but one, ..."""
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return n_jobs


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
    shared = [dask.delayed(a, pure=True) if _is_large(a) else a for a in args]
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


def map_parts(func: Callable[..., Any], *args: Any) -> list[Any]:
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


def _is_large(a: Any) -> bool:
    return not isinstance(a, (int, float, bool, str, type(None)))


def sum_in_order(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Sum block partials in float64, in block order (deterministic for a fixed chunking)."""
    total = np.zeros_like(np.asarray(parts[0]), dtype=np.float64)
    for p in parts:
        total += p
    return total
