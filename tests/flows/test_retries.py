"""Prefect retries a stage-like task after a cluster error, never after a bad input."""

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, task

from spectral_pipeline.tasks.retries import retry_transient

ATTEMPTS: dict[str, int] = {}


@task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_transient)
def cluster_hiccup(address: str) -> str:
    """Fails its first attempt with the KeyError Dask's scheduler raises for a forgotten key."""
    from distributed import Client

    ATTEMPTS["cluster"] = ATTEMPTS.get("cluster", 0) + 1
    if ATTEMPTS["cluster"] == 1:
        with Client(address) as client:
            client.sync(client.scheduler.replicate, keys=["forgotten-key"])
    return "done"


@task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_transient)
def missing_column(path: str) -> None:
    ATTEMPTS["column"] = ATTEMPTS.get("column", 0) + 1
    pq.read_table(path).column("f1")


@flow
def _both(address: str, path: str):
    return (cluster_hiccup(address, return_state=True),
            missing_column(path, return_state=True))


def test_cluster_key_error_is_retried_and_missing_column_is_not(tmp_path):
    from distributed import LocalCluster

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"f0": [1.0]}), path)
    ATTEMPTS.clear()
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        hiccup, column = _both(cluster.scheduler_address, str(path))
    assert hiccup.is_completed() and hiccup.result() == "done"
    assert ATTEMPTS["cluster"] == 2  # failed once with the scheduler's KeyError, retried
    assert column.is_failed()
    assert ATTEMPTS["column"] == 1  # a missing column is not retried
