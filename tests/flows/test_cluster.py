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
    """(address, processes, fault file): a scheduler and two workers; the second one's fault
    injection reads its spec from the fault file (none while the file does not exist)."""
    fault = tmp_path / "fault"
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url())
    address, procs = start_cluster([{}, {"SPECTRAL_INJECT_FAULT": f"@{fault}"}], env)
    try:
        yield address, procs, fault
    finally:
        stop_cluster(procs)


def _params(data, out, address):
    return SpectralParams(input=str(data), output_dir=str(out),
                          feature_columns=["f0", "f1", "f2", "f3"], id_column="id",
                          block_size=500, n_clusters=3, gamma=0.1, n_components=50,
                          random_state=0, dask={"address": address})


@pytest.mark.slow
def test_flow_on_an_existing_multi_process_cluster_then_with_a_worker_killed(blobs_data,
                                                                             tmp_path,
                                                                             dask_cluster):
    """A run on the cluster; then, on the same cluster, a run during whose kernel_blocks one
    of the two worker processes is SIGKILLed mid-pass: Dask reruns its work elsewhere and the
    run still completes."""
    from distributed import Client

    data, X, _ = blobs_data
    address, procs, fault = dask_cluster
    params = _params(data, tmp_path / "out", address)
    run_spectral(params)
    labels = pq.read_table(tmp_path / "out" / "labels").column("label").to_numpy()
    clean = SpectralClustering(**params.estimator_params()).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)
    with Client(address) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    # The block passes ran on this cluster: 6,000 rows in blocks of 500 are 12 parts a pass.
    # (Which worker takes which part is the Dask scheduler's choice, not the flow's.)
    assert len(executed) == 2
    assert sum(executed.values()) >= 12, executed

    # The second worker dies once it has written a kernel_blocks part of the next run (a
    # new output folder: nothing is reused).
    fault.write_text("kernel_blocks:1:kill")
    run_spectral(_params(data, tmp_path / "out-killed", address))
    assert procs[2].wait(timeout=60) == -9  # the faulty worker really died
    with Client(address) as client:
        assert len(client.scheduler_info()["workers"]) == 1
    labels = pq.read_table(tmp_path / "out-killed" / "labels").column("label").to_numpy()
    np.testing.assert_array_equal(labels, clean.labels_)
