"""Block work inside a task: fan parts out over the Dask cluster, report progress.

A task runs on a Dask worker; it reaches the cluster with ``distributed.worker_client()``,
which secedes the task's thread from the worker's pool so the parts can use every slot
(``get_dask_client().compute(...).result()`` deadlocks a busy cluster: DESIGN.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from threadpoolctl import threadpool_limits

logger = logging.getLogger(__name__)

_BLAS_LIMITED = False


def one_blas_thread() -> None:
    """Parts run one per worker thread: give each one BLAS thread, once per process.

    Several threads each running a multi-threaded OpenBLAS oversubscribe the cores (and spin);
    block-parallel work with single-threaded BLAS is several times faster on tall-skinny GEMMs.
    """
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        threadpool_limits(limits=1, user_api="blas")
        _BLAS_LIMITED = True


def map_parts(
    func: Callable[..., Any],
    items: Iterable[Any],
    *args: Any,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """``[func(item, *args) for item in items]`` on the cluster, in item order.

    Falls back to running in this thread when not on a Dask worker (a task called directly).
    """
    items = list(items)
    total = len(items)
    if not items:
        return []
    try:
        from distributed import worker_client

        ctx = worker_client()
        client = ctx.__enter__()
    except (ImportError, ValueError):
        client = None
    if client is None:
        results = []
        for i, item in enumerate(items, 1):
            results.append(func(item, *args))
            if on_progress:
                on_progress(i, total)
        return results
    try:
        from distributed import as_completed

        shared = [client.scatter(a, broadcast=True) if _is_large(a) else a for a in args]
        futures = [client.submit(func, item, *shared, pure=False) for item in items]
        position = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * total
        for done, fut in enumerate(as_completed(futures), 1):
            results[position[fut.key]] = fut.result()
            if on_progress:
                on_progress(done, total)
        return results
    finally:
        ctx.__exit__(None, None, None)


def _is_large(a: Any) -> bool:
    return not isinstance(a, (int, float, bool, str, type(None)))
