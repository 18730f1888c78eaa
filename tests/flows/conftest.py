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
