"""Bad input to the flow: a clear error before the block passes, nothing half-written."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral_pipeline.flows.params import SpectralParams
from spectral_pipeline.flows.spectral import run_spectral
from spectral_pipeline.tasks.checkpoints import FORMAT_VERSION
from spectral_pipeline.tasks.errors import InputError

from .conftest import write_dataset


def _good(folder, n=400, seed=0):
    rng = np.random.RandomState(seed)
    return write_dataset(folder, rng.rand(n, 3), rng.randint(0, 2, n), files=2,
                         row_group_size=100)


def _with_nan(folder):
    _good(folder)
    table = pq.read_table(folder / "part-1.parquet")
    f1 = table.column("f1").to_numpy().copy()
    f1[57] = np.nan
    pq.write_table(table.set_column(table.schema.get_field_index("f1"), "f1", pa.array(f1)),
                   folder / "part-1.parquet", row_group_size=100)
    return folder


def _negative(folder):
    rng = np.random.RandomState(0)
    return write_dataset(folder, rng.rand(400, 3) - 0.5, rng.randint(0, 2, 400), files=2,
                         row_group_size=100)


def _schemas_disagree(folder):
    _good(folder)
    table = pq.read_table(folder / "part-1.parquet")
    i = table.schema.get_field_index("f2")
    as_int = pa.array((table.column("f2").to_numpy() * 100).astype(np.int64))
    pq.write_table(table.set_column(i, "f2", as_int), folder / "part-1.parquet")
    return folder


def _duplicate_ids(folder):
    _good(folder)
    table = pq.read_table(folder / "part-1.parquet")
    ids = table.column("id").to_numpy().copy()
    ids[10] = ids[3] = 1000  # 1000 is also the first id of part-0
    pq.write_table(table.set_column(table.schema.get_field_index("id"), "id", pa.array(ids)),
                   folder / "part-1.parquet", row_group_size=100)
    return folder


def _strings_only(folder):
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"name": ["a", "b"] * 100}), folder / "s.parquet")
    return folder


def _empty_dir(folder):
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("no parquet here")
    return folder


def _old_checkpoints(folder):
    _good(folder)
    ckpt = folder.parent / "out" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "spectral-checkpoints.json").write_text(json.dumps({"format_version": 0}))
    return folder


CASES = [
    ("missing input", lambda d: d / "nope", {}, r"The input '.*nope' does not exist"),
    ("no parquet files", _empty_dir, {}, r"contains no \.parquet files"),
    ("no numeric columns", _strings_only, {}, r"has no numeric feature columns"),
    ("unknown column", _good, {"feature_columns": ["f0", "f9"]},
     r"feature columns \['f9'\] are not in the input"),
    ("unknown id column", _good, {"id_column": "key"}, r"id column 'key' is not in the input"),
    ("schemas disagree", _schemas_disagree, {}, r"disagree on their schema: .*part-0.parquet' "
     r"and .*part-1.parquet' differ \(column 'f2' is double vs int64\)"),
    ("NaN in the data", _with_nan, {}, r"NaN or inf: file '.*part-1.parquet', row 57 of that "
     r"file \(row 257 of the dataset\), column 'f1'"),
    ("negative data for chi2", _negative, {"affinity": "chi2", "feature_columns": ["f0", "f1",
                                                                                   "f2"]},
     r"The input with affinity='chi2' must be non-negative .* Got a minimum of -0\.4"),
    ("duplicate ids", _duplicate_ids, {}, r"id column 'id' has duplicated values \(e.g. 1000 "
     r"appears 3 times\)"),
    ("kernel underflows", _good, {"gamma": 1e9}, r"exactly 0 between every pair of landmarks"),
    ("too few rows", _good, {"n_components": 400}, r"'n_components' parameter of "
     r"SpectralClustering must be < n_samples=400"),
    ("old checkpoint format", _old_checkpoints, {}, rf"written by checkpoint format 0; this "
     rf"version reads format {FORMAT_VERSION}. Use another checkpoint directory"),
]


@pytest.mark.parametrize(("name", "make", "extra", "match"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_before_work_and_writes_nothing(tmp_path, name, make, extra, match):
    data = make(tmp_path / "data")
    out = tmp_path / "out"
    before = sorted(out.rglob("*")) if out.exists() else []
    params = SpectralParams(**{"input": str(data), "output_dir": str(out), "n_clusters": 2,
                               "n_components": 20, "id_column": "id" if name != "no numeric "
                               "columns" else None, **extra})
    with pytest.raises(ValueError, match=match):
        run_spectral(params)
    after = sorted(out.rglob("*")) if out.exists() else []
    if name == "kernel underflows":  # found from the landmarks, which were sampled first
        assert not list(out.glob("checkpoints/*/kernel_blocks"))
        assert not (out / "labels").exists()
    else:  # nothing written: no marker, no directory (NaN included: a pass over the data)
        assert after == before


def test_unwritable_output_directory(tmp_path):
    data = _good(tmp_path / "data")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    params = SpectralParams(input=str(data), output_dir=str(blocker / "out"), n_clusters=2,
                            n_components=20, id_column="id")
    with pytest.raises(InputError, match=r"The output directory '.*a-file/out' cannot be "
                       r"written"):
        run_spectral(params)


def test_pydantic_rejects_bad_parameters_before_the_flow():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"gamma\n.*greater than 0"):
        SpectralParams(input="x", gamma=0)
    with pytest.raises(ValidationError, match=r"affinity\n.*Input should be .*'rbf'"):
        SpectralParams(input="x", affinity="rbff")
    with pytest.raises(ValidationError, match=r"The 'n_clusters' parameter of SpectralClustering "
                       r"must be an int in the range \[1, n_components=100\]. Got 200"):
        SpectralParams(input="x", n_clusters=200)
    with pytest.raises(ValidationError, match=r"The 'n_jobs' parameter .* must be an int != 0"):
        SpectralParams(input="x", n_jobs=0)
    with pytest.raises(ValidationError, match=r"'kmeans_params' parameter .* \['n_clusterz'\] "
                       r"are not"):
        SpectralParams(input="x", kmeans_params={"n_clusterz": 2})
