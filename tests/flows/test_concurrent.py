"""Runs started at the same time on one checkpoint directory do not corrupt each other."""

import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from spectral_core import SpectralClustering

from .helpers import BIN, cli_env, current_api_url, run_args


@pytest.mark.slow
def test_concurrent_runs_share_a_checkpoint_directory(blobs_data, tmp_path):
    data, X, _ = blobs_data
    ckpt = tmp_path / "shared-checkpoints"
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url())
    runs = {"a": 3, "b": 3, "c": 4}  # a and b: same parameters; c: another n_clusters
    procs = {
        name: subprocess.Popen(
            [str(BIN / "spectral-flow"),
             *run_args(data, tmp_path / name, checkpoint_dir=ckpt, n_clusters=k, block_size=500,
                       dask_threads_per_worker=1)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, k in runs.items()
    }
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, err[-3000:])
    for name, k in runs.items():
        labels = pq.read_table(tmp_path / name / "labels").column("label").to_numpy()
        alone = SpectralClustering(n_clusters=k, gamma=0.1, n_components=50,
                                   random_state=0).fit(X)
        np.testing.assert_array_equal(labels, alone.labels_, err_msg=name)
    assert not list(ckpt.rglob("*.tmp"))  # no temporary file left behind
