"""The flow against a scheduler and two workers started as separate processes."""

import subprocess
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from flows.params import SpectralParams
from flows.server import free_port
from flows.spectral import spectral_clustering
from spectral_core import SpectralClustering

from .helpers import BIN, cli_env, current_api_url


@pytest.fixture
def dask_cluster(tmp_path):
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url())
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for _ in range(2):
        procs.append(subprocess.Popen(
            [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
             "--host", "127.0.0.1"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        time.sleep(0.1)


@pytest.mark.slow
def test_flow_on_an_existing_multi_process_cluster(blobs_data, tmp_path, dask_cluster):
    from distributed import Client

    data, X, _ = blobs_data
    params = SpectralParams(input=str(data), output_dir=str(tmp_path / "out"),
                            feature_columns=["f0", "f1", "f2", "f3"], id_column="id",
                            block_size=500, n_clusters=3, gamma=0.1, n_components=50,
                            random_state=0, dask={"address": dask_cluster})
    spectral_clustering(params)
    labels = pq.read_table(tmp_path / "out" / "labels.parquet").column("label").to_numpy()
    clean = SpectralClustering(**params.estimator_params()).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)
    with Client(dask_cluster) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2
    assert all(count >= 5 for count in executed.values()), executed
