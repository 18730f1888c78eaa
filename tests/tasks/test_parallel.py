"""tasks.parallel.fan_out: parts in order, with progress, on a real multi-process Dask cluster.

The stress test is the regression test for a race: shared objects used to be scattered under
content-hashed keys, so consecutive passes reused one key, and the previous pass's release
could reach the scheduler after the next pass's scatter (``KeyError`` in
``Client._replicate``, or parts cancelled for "lost dependencies"). The race needs the next
scatter to follow the release within a few milliseconds; the test sweeps that gap. With
hashed keys it failed 9 of 9 times (3 to 11 of 120 passes each, see docs/architecture.md).
"""

import time
import uuid

import numpy as np
import pytest

from spectral_pipeline.tasks.parallel import ClusterError, fan_out
from spectral_pipeline.tasks.retries import is_transient

from ..clusters import start_cluster, stop_cluster


def _part(i, table, weights, scale):
    """A part that uses its shared objects: row i of the table, weighted, scaled."""
    return float(table[i % table.shape[0]] @ weights) * scale + i


def _expected(n, table, weights, scale):
    return [_part(i, table, weights, scale) for i in range(n)]


def _shared(seed):
    rng = np.random.default_rng(seed)
    return rng.random((50, 8)), rng.random(8), 0.5


def test_fan_out_off_a_cluster_runs_the_parts_here_in_order():
    table, weights, scale = _shared(0)
    progress = []
    got = fan_out(_part, range(7), table, weights, scale,
                  on_progress=lambda done, total: progress.append((done, total)))
    assert got == _expected(7, table, weights, scale)
    assert progress == [(i, 7) for i in range(1, 8)]
    assert fan_out(_part, [], table, weights, scale) == []


@pytest.fixture(scope="module")
def cluster():
    address, procs = start_cluster([{}, {}])
    try:
        yield address
    finally:
        stop_cluster(procs)


def _run_on(address, func, *args):
    """Run ``func`` as a task on the cluster (fan_out is called from inside a task)."""
    from distributed import Client

    with Client(address, timeout=60) as client:
        return client.submit(func, *args, pure=False).result()


def _in_order_with_progress(n, workers):
    table, weights, scale = _shared(1)
    progress = []
    meeting = f"fan-out-{uuid.uuid4().hex}"
    got = fan_out(_part_where, range(n), table, weights, scale, meeting, workers,
                  on_progress=lambda done, total: progress.append((done, total)))
    results = [r for r, _ in got]
    return (results == _expected(n, table, weights, scale), progress,
            sorted({w for _, w in got}))


def _part_where(i, table, weights, scale, meeting, workers):
    """Part i, and the worker it ran on. The first part a worker takes waits (up to a minute)
    until every worker has taken one: while it waits, the other parts can only go to the
    other worker, so parts spread over both workers whatever the timing, unless fan_out keeps
    them on one (then the wait runs out and the test fails)."""
    from distributed import Event, get_worker

    me = get_worker().address
    mine = Event(f"{meeting}-{me}")
    if not mine.is_set():
        mine.set()
        for worker in workers:
            Event(f"{meeting}-{worker}").wait(timeout=60)
    return _part(i, table, weights, scale), me


@pytest.mark.slow
def test_fan_out_on_a_cluster_keeps_order_reports_progress_and_uses_every_worker(cluster):
    from distributed import Client

    with Client(cluster, timeout=60) as client:
        workers = sorted(client.scheduler_info()["workers"])
    assert len(workers) == 2
    in_order, progress, used = _run_on(cluster, _in_order_with_progress, 40, workers)
    assert in_order
    assert progress == [(i, 40) for i in range(1, 41)]
    assert used == workers


def _missing_column_part(i, table, weights, scale):
    import pyarrow as pa

    if i == 3:
        pa.table({"f0": [1.0]}).column("f1")  # KeyError: no such column
    return i


def _failing_pass():
    table, weights, scale = _shared(2)
    try:
        fan_out(_missing_column_part, range(6), table, weights, scale)
    except Exception as exc:  # judged here, where the traceback is
        return type(exc).__name__, str(exc), is_transient(exc)
    return None


@pytest.mark.slow
def test_a_failing_part_reraises_its_own_error_which_is_not_retried(cluster):
    assert _run_on(cluster, _failing_pass) == (
        "KeyError", "'Field \"f1\" does not exist in schema'", False)


def _back_to_back(passes, parts, gaps):
    """``passes`` block passes in a row, as a stage makes them; the failures, as text."""
    failures = []
    shared = _shared(3)  # the same objects in every pass, as in a stage's passes
    for p in range(passes):
        try:
            got = fan_out(_part, range(parts), *shared)
            if got != _expected(parts, *shared):
                failures.append(f"pass {p}: wrong results")
        except BaseException as exc:  # a cancelled part (asyncio.CancelledError) too
            failures.append(f"pass {p}: {type(exc).__name__}: {exc}")
        time.sleep(gaps[p % len(gaps)])
    return failures


@pytest.mark.slow
def test_back_to_back_passes_never_lose_their_shared_objects(cluster):
    failures = _run_on(cluster, _back_to_back, 120, 10, (0.0, 0.003, 0.006, 0.010))
    assert failures == [], f"{len(failures)} of 120 passes failed: {failures[:5]}"


def test_cluster_error_is_transient():
    assert is_transient(ClusterError("part 3 was cancelled by the Dask cluster"))
