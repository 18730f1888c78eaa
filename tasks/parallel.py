"""Block work inside a task: fan parts out over the Dask cluster, report progress.

A task runs on a Dask worker; it reaches the cluster with ``distributed.worker_client()``,
which secedes the task's thread from the worker's pool so the parts can use every slot
(``get_dask_client().compute(...).result()`` deadlocks a busy cluster).

Objects every part needs (the dataset plan, the landmarks, the kernel, the degree weights) are
scattered once per call under keys of their own (``hash=False``) and released when the call
returns. They must not be scattered under content-hashed keys: consecutive passes would then
reuse one key, and the release of the previous pass's copy (a batched message) can reach the
scheduler after the next pass's ``update_data`` (an RPC). The scheduler then forgets a key the
client has just scattered: ``KeyError`` in ``Client._replicate``, or parts cancelled for "lost
dependencies" (docs/architecture.md, "Sharing objects with the parts").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from threadpoolctl import threadpool_limits

_BLAS_LIMITED = False

#: Copy the shared objects to every worker before the parts start. benchmarks/scatter.py
#: measures no difference in pass time between broadcast and a single copy fetched on demand,
#: for objects of 1 KB to 30 MB, on threads or worker processes; what broadcast buys is a copy
#: on every worker, so a worker lost mid-pass does not take the pass's inputs with it.
#: (Passing objects by value, pickled into every part, costs 1.3-9x per pass from 300 KB up.)
BROADCAST = True


class ClusterError(RuntimeError):
    """The Dask cluster lost a part or the data it needed: transient, the task is retried."""


def one_blas_thread() -> None:
    """Parts run one per worker thread: give each one BLAS thread, once per process.

    Several threads each running a multi-threaded OpenBLAS oversubscribe the cores (and spin);
    block-parallel work with single-threaded BLAS is several times faster on tall-skinny GEMMs.
    """
    global _BLAS_LIMITED
    if not _BLAS_LIMITED:
        threadpool_limits(limits=1, user_api="blas")
        _BLAS_LIMITED = True


def fan_out(
    func: Callable[..., Any],
    items: Iterable[Any],
    *args: Any,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """``[func(item, *args) for item in items]`` on the Dask cluster, in item order.

    ``args`` are shared by every part: scalars and strings are passed by value, anything else
    is scattered once (to every worker) and released on return. Runs in this thread when not
    on a Dask worker (a task called directly). A part that raises re-raises here with its own
    exception; a part the cluster cancelled raises :class:`ClusterError`.
    """
    items = list(items)
    if not items:
        return []
    try:
        from distributed import worker_client

        ctx = worker_client()
        client = ctx.__enter__()
    except ValueError:  # not running on a Dask worker
        return _fan_out_here(func, items, args, on_progress)
    try:
        return _fan_out_on_cluster(client, func, items, args, on_progress)
    finally:
        ctx.__exit__(None, None, None)


def fan_in(
    func: Callable[..., Any],
    groups: list[list[Any]],
    combine: Callable[..., Any],
    *args: Any,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """``[combine(g, [func(item, *args) for item in group]) for g, group in ...]``, in order.

    The items run as parallel parts, and each group's results are combined on a worker (one
    task per group, depending on its parts): only the combined values come back here. Off a
    cluster, it runs in this thread.
    """
    if not groups:
        return []
    try:
        from distributed import worker_client

        ctx = worker_client()
        client = ctx.__enter__()
    except ValueError:
        out = []
        for g, group in enumerate(groups):
            out.append(combine(g, *[func(item, *args) for item in group]))
            if on_progress:
                on_progress(g + 1, len(groups))
        return out
    try:
        call_args = _scatter_args(client, args)
        combined = []
        for g, group in enumerate(groups):
            parts = [client.submit(func, item, *call_args, pure=False) for item in group]
            combined.append(client.submit(combine, g, *parts, pure=False))
        return _gather_in_order(combined, combine.__name__, on_progress)
    finally:
        ctx.__exit__(None, None, None)


def _gather_in_order(futures, what: str, on_progress) -> list[Any]:
    from distributed import as_completed

    position = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for done, (future, result) in enumerate(as_completed(futures, with_results=True), 1):
        if future.status == "cancelled" or isinstance(result, asyncio.CancelledError):
            raise ClusterError(
                f"Part {position[future.key]} of {what} was cancelled by the Dask cluster "
                f"({result!r}); the task is retried.")
        results[position[future.key]] = result
        if on_progress:
            on_progress(done, len(futures))
    return results


def _fan_out_here(func, items, args, on_progress) -> list[Any]:
    results = []
    for i, item in enumerate(items, 1):
        results.append(func(item, *args))
        if on_progress:
            on_progress(i, len(items))
    return results


def _scatter_args(client, args: tuple[Any, ...]) -> list[Any]:
    """``args`` with every shared object replaced by its future: one scatter for all of them,
    under keys of their own (never content hashes), alive as long as the caller holds them."""
    shared = [i for i, a in enumerate(args) if _scatter_once(a)]
    scattered = client.scatter([args[i] for i in shared], broadcast=BROADCAST, hash=False)
    by_position = dict(zip(shared, scattered, strict=True))
    return [by_position.get(i, a) for i, a in enumerate(args)]


def _fan_out_on_cluster(client, func, items, args, on_progress) -> list[Any]:
    call_args = _scatter_args(client, args)
    futures = [client.submit(func, item, *call_args, pure=False) for item in items]
    # Results are gathered on the client's event loop as parts finish, not by one blocking
    # round trip per part from this thread.
    return _gather_in_order(futures, func.__name__, on_progress)


def _scatter_once(a: Any) -> bool:
    """Scalars and strings travel with each part; anything else is scattered once."""
    return not isinstance(a, (int, float, bool, str, bytes, type(None)))
