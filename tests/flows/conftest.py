"""Flow tests run against a real Prefect API: this worker's local server (tests/conftest.py)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_api(prefect_server):
    return prefect_server


def write_dataset(folder, X, y, *, files=3, row_group_size=500, extra=None):
    """X split into ``files`` Parquet files with an ``id`` column and the truth ``y``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(X.shape[0]), files)):
        cols = {"id": rows + 1000, "y": y[rows],
                **{f"f{j}": X[rows, j] for j in range(X.shape[1])}}
        if extra:
            cols.update({k: v[rows] for k, v in extra.items()})
        pq.write_table(pa.table(cols), folder / f"part-{i}.parquet",
                       row_group_size=row_group_size)
    return folder


@pytest.fixture(scope="session")
def blobs_data(tmp_path_factory):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(6000, n_features=4, centers=3, cluster_std=0.6, random_state=3)
    folder = write_dataset(tmp_path_factory.mktemp("blobs") / "data", X, y)
    return folder, X, y


#: The tests that read the blobs' default run (``blobs_run``) go to one pytest-xdist worker,
#: so the run is made once a session.
BLOBS_RUN = pytest.mark.xdist_group("blobs-run")

#: The flow's parameters for a run over ``blobs_data``, for the tests that call the flow in
#: this process (``blobs_params`` overrides them by keyword).
BLOBS_PARAMS = dict(feature_columns=["f0", "f1", "f2", "f3"], id_column="id", block_size=1000,
                    n_clusters=3, gamma=0.1, n_components=50, random_state=0,
                    dask={"n_workers": 1, "threads_per_worker": 2})


def blobs_params(data, out, **kw):
    from spectral_pipeline.flows.params import SpectralParams

    return SpectralParams(**{"input": str(data), "output_dir": str(out), **BLOBS_PARAMS, **kw})


def _dask_logs():
    import logging
    import os

    return logging.getLogger("distributed").level, os.environ.get("DASK_LOGGING__DISTRIBUTED")


def _results_storage():
    from prefect.settings import get_current_settings

    storage = get_current_settings().results.local_storage_path
    return set(storage.rglob("*")) if storage.exists() else set()


@pytest.fixture(scope="session")
def blobs_run(blobs_data, tmp_path_factory):
    """The flow, in this process, on ``blobs_data`` with ``BLOBS_PARAMS`` (the defaults'
    affinity and landmarks): made once for the tests that read a finished run, or copy its
    output folder to change it and run again (``copy_run``). Nothing else writes into its
    folder; ``blobs_rerun`` runs it again there.

    Also records what the run must leave as it was: Dask's log level in this process, and
    Prefect's result storage (as it was before the run).
    """
    import json
    from types import SimpleNamespace

    from spectral_pipeline.flows.spectral import run_spectral

    data, _, _ = blobs_data
    out = tmp_path_factory.mktemp("blobs-run") / "out"
    params = blobs_params(data, out)
    storage, logs = _results_storage(), _dask_logs()
    result = run_spectral(params)
    return SimpleNamespace(out=out, params=params, result=result,
                           summary=json.loads((out / "summary.json").read_text()),
                           labels=pq.read_table(out / "labels").column("label").to_numpy(),
                           dask_logs=(logs, _dask_logs()), storage_before=storage)


@pytest.fixture(scope="session")
def blobs_rerun(blobs_run):
    """The same run again, into the same folder: its result (every stage reused)."""
    from spectral_pipeline.flows.spectral import run_spectral

    return run_spectral(blobs_run.params)


def copy_run(run, folder):
    """A copy of ``run``'s output folder (checkpoints included) at ``folder``: a finished run
    there, but for ``write_outputs``, whose key holds the output's location."""
    import shutil

    shutil.copytree(run.out, folder)
    return folder
