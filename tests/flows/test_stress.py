"""Many short runs with many parts each, at the same time: none may fail.

Every block pass scatters the landmarks, the dataset plan and the kernel to the cluster and
releases them when the pass ends. When the scattered keys were content hashes, the next pass
reused the key the previous pass was releasing, and the release could reach the scheduler after
the new scatter: ``KeyError`` in ``Client._replicate``, or parts cancelled for "lost
dependencies". 3,000 rows in blocks of 50 give 60 parts a pass and four scatter/release cycles
a run.

The race itself is tested at the level of block passes, where it is likely:
tests/tasks/test_parallel.py sweeps the gap between passes and failed on every run of the racy
code. Runs of the whole flow back to back never failed on it (30 in a row: the flow's gap
between passes is above the race's ~20 ms window), so they are not repeated here; these three
concurrent runs check the product end to end with many parts, scatter cycles and runs sharing
one Prefect server.
"""

import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from spectral_core import SpectralClustering

from .conftest import write_dataset
from .helpers import BIN, cli_env, current_api_url, run_args

ESTIMATOR = dict(n_clusters=3, gamma=0.1, n_components=20)


@pytest.fixture(scope="module")
def many_parts(tmp_path_factory):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(3000, n_features=4, centers=3, cluster_std=0.6, random_state=7)
    folder = write_dataset(tmp_path_factory.mktemp("many-parts") / "data", X, y,
                           files=2, row_group_size=50)
    return folder, X


def _library_labels(X, seed):
    return SpectralClustering(**ESTIMATOR, random_state=seed).fit(X).labels_


@pytest.mark.slow
def test_concurrent_runs_with_many_parts_all_succeed(many_parts, tmp_path):
    data, X = many_parts
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url())
    seeds = [0, 1, 2]
    procs = [
        subprocess.Popen(
            [str(BIN / "spectral-flow"),
             *run_args(data, tmp_path / str(s), n_components=20, random_state=s, block_size=50)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for s in seeds
    ]
    errors = []
    for s, proc in zip(seeds, procs, strict=True):
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            errors.append(f"seed {s}: exit {proc.returncode}\n{err[-1500:]}")
    assert not errors, "\n".join(errors)
    for s in seeds:
        labels = pq.read_table(tmp_path / str(s) / "labels").column("label").to_numpy()
        np.testing.assert_array_equal(labels, _library_labels(X, s), err_msg=f"seed {s}")
