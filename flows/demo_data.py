"""The demo's data: scikit-learn's digits, or Gaussian blobs of any size, written to Parquet
(also used by ``benchmarks/scale.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_digits(folder: Path) -> tuple[Path, Any]:
    """scikit-learn's digits as a Parquet dataset (3 files), with the true digit as a column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(X.shape[0]), 3)):
        table = pa.table({"image_id": rows, "digit": y[rows],
                          **{f"pixel_{j}": X[rows, j] for j in range(X.shape[1])}})
        pq.write_table(table, folder / f"digits-{i}.parquet", row_group_size=300)
    return folder, y


def write_blobs(folder: Path, rows: int, *, features: int = 10, clusters: int = 8,
                rows_per_file: int = 1_000_000, seed: int = 0) -> tuple[Path, Any]:
    """A synthetic Gaussian-blob dataset of any size, written file by file (bounded memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(clusters, features))
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    for i, start in enumerate(range(0, rows, rows_per_file)):
        n = min(rows_per_file, rows - start)
        y = rng.integers(clusters, size=n)
        X = (centres[y] + rng.standard_normal((n, features))).astype(np.float32)
        table = pa.table({"row_id": np.arange(start, start + n), "truth": y,
                          **{f"x{j}": X[:, j] for j in range(features)}})
        pq.write_table(table, folder / f"blobs-{i:04d}.parquet", row_group_size=65_536)
        truth.append(y)
    return folder, np.concatenate(truth)
