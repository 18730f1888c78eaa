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


def _start_cluster(tmp_path, worker_envs):
    """A scheduler and one worker per env (each a process on 127.0.0.1)."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url())
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for extra in worker_envs:
        procs.append(subprocess.Popen(
            # --no-nanny: a SIGKILLed worker stays dead (a nanny would restart it).
            [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
             "--no-nanny", "--host", "127.0.0.1"], env={**env, **extra}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
    with Client(address, timeout=60) as client:
        client.wait_for_workers(len(worker_envs), timeout=60)
    return address, procs


def _stop_cluster(procs):
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
    time.sleep(0.1)


@pytest.fixture
def dask_cluster(tmp_path):
    address, procs = _start_cluster(tmp_path, [{}, {}])
    try:
        yield address
    finally:
        _stop_cluster(procs)


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


@pytest.mark.slow
def test_worker_killed_during_kernel_blocks_run_still_completes(blobs_data, tmp_path):
    """One of two worker processes is SIGKILLed mid-pass; Dask reruns its work elsewhere."""
    from distributed import Client

    data, X, _ = blobs_data
    address, procs = _start_cluster(
        tmp_path, [{}, {"SPECTRAL_INJECT_FAULT": "kernel_blocks:1:kill"}])
    try:
        params = SpectralParams(input=str(data), output_dir=str(tmp_path / "out"),
                                feature_columns=["f0", "f1", "f2", "f3"], id_column="id",
                                block_size=500, n_clusters=3, gamma=0.1, n_components=50,
                                random_state=0, dask={"address": address})
        spectral_clustering(params)
        assert procs[2].wait(timeout=60) == -9  # the faulty worker really died
        with Client(address) as client:
            assert len(client.scheduler_info()["workers"]) == 1
        labels = pq.read_table(tmp_path / "out" / "labels.parquet").column("label").to_numpy()
        clean = SpectralClustering(**params.estimator_params()).fit(X)
        np.testing.assert_array_equal(labels, clean.labels_)
    finally:
        _stop_cluster(procs)
