"""build_job: paths are resolved and confined to the configured roots."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral_pipeline.flows.params import SpectralParams
from spectral_pipeline.tasks.errors import InputError
from spectral_pipeline.tasks.preflight import ALLOWED_ROOTS_ENV, build_job


def _params(data, out, **kw):
    return SpectralParams(**{"input": str(data), "output_dir": str(out), "block_size": 1000,
                             "n_clusters": 2, "n_components": 10, **kw}).request()


@pytest.fixture
def roots(tmp_path, monkeypatch):
    data_root, out_root = tmp_path / "data", tmp_path / "results"
    data_root.mkdir()
    out_root.mkdir()
    rng = np.random.RandomState(0)
    pq.write_table(pa.table({"a": rng.rand(50), "b": rng.rand(50)}), data_root / "x.parquet")
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, os.pathsep.join([str(data_root), str(out_root)]))
    monkeypatch.chdir(out_root)
    return data_root, out_root


def test_paths_inside_the_roots_are_accepted_and_resolved(roots):
    data_root, out_root = roots
    job = build_job(_params(data_root, "run-1"))  # relative to the working directory
    assert job.output_url == str(out_root / "run-1")
    assert [f.path for f in job.plan.files] == [str(data_root / "x.parquet")]
    assert not (out_root / "run-1").exists()  # planning writes nothing


@pytest.mark.parametrize(("field", "value", "what"), [
    ("input", "../../../etc", "input"),
    ("input", "/etc/*.conf", "input"),
    ("output_dir", "../../../../tmp/elsewhere", "output directory"),
    ("checkpoint_dir", "/var/tmp/ckpt", "checkpoint directory"),
])
def test_paths_outside_the_roots_are_refused(roots, field, value, what):
    data_root, _ = roots
    params = _params(data_root, "run-1", **{field: value})
    with pytest.raises(InputError, match=rf"The {what} '.*' resolves to '.*', outside the "
                       rf"allowed roots .* \({ALLOWED_ROOTS_ENV}\)"):
        build_job(params)


def test_a_symlink_out_of_the_roots_is_refused(roots, tmp_path):
    data_root, _ = roots
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"a": np.arange(50.0), "b": np.arange(50.0)}), outside)
    (data_root / "link.parquet").symlink_to(outside)
    with pytest.raises(InputError, match=r"The input file '.*link.parquet' resolves to "
                       r"'.*outside.parquet', outside the allowed roots"):
        build_job(_params(data_root, "run-1"))
