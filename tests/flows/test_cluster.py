"""The flow against a scheduler and two workers started as separate processes."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from spectral_core import SpectralClustering
from spectral_pipeline.flows.params import SpectralParams
from spectral_pipeline.flows.spectral import run_spectral

from ..clusters import start_cluster, stop_cluster
from .helpers import cli_env, current_api_url


@pytest.fixture
def dask_cluster(tmp_path):
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url())
    address, procs = start_cluster([{}, {}], env)
    try:
        yield address
    finally:
        stop_cluster(procs)


@pytest.mark.slow
def test_flow_on_an_existing_multi_process_cluster(blobs_data, tmp_path, dask_cluster):
    from distributed import Client

    data, X, _ = blobs_data
    params = SpectralParams(input=str(data), output_dir=str(tmp_path / "out"),
                            feature_columns=["f0", "f1", "f2", "f3"], id_column="id",
                            block_size=500, n_clusters=3, gamma=0.1, n_components=50,
                            random_state=0, dask={"address": dask_cluster})
    run_spectral(params)
    labels = pq.read_table(tmp_path / "out" / "labels").column("label").to_numpy()
    clean = SpectralClustering(**params.estimator_params()).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)
    with Client(dask_cluster) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    # The block passes ran on this cluster: 6,000 rows in blocks of 500 are 12 parts a pass.
    # (Which worker takes which part is the Dask scheduler's choice, not the flow's.)
    assert len(executed) == 2
    assert sum(executed.values()) >= 12, executed


@pytest.mark.slow
def test_worker_killed_during_kernel_blocks_run_still_completes(blobs_data, tmp_path):
    """One of two worker processes is SIGKILLed mid-pass; Dask reruns its work elsewhere."""
    from distributed import Client

    data, X, _ = blobs_data
    address, procs = start_cluster(
        [{}, {"SPECTRAL_INJECT_FAULT": "kernel_blocks:1:kill"}],
        cli_env(tmp_path, PREFECT_API_URL=current_api_url()))
    try:
        params = SpectralParams(input=str(data), output_dir=str(tmp_path / "out"),
                                feature_columns=["f0", "f1", "f2", "f3"], id_column="id",
                                block_size=500, n_clusters=3, gamma=0.1, n_components=50,
                                random_state=0, dask={"address": address})
        run_spectral(params)
        assert procs[2].wait(timeout=60) == -9  # the faulty worker really died
        with Client(address) as client:
            assert len(client.scheduler_info()["workers"]) == 1
        labels = pq.read_table(tmp_path / "out" / "labels").column("label").to_numpy()
        clean = SpectralClustering(**params.estimator_params()).fit(X)
        np.testing.assert_array_equal(labels, clean.labels_)
    finally:
        stop_cluster(procs)
