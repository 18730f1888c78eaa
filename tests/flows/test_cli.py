"""`spectral-flow` end to end, on the embedded default (no server started by hand)."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from flows.params import DaskOptions, SpectralParams
from spectral_core import SpectralClustering

from .helpers import cli_env, run_cli


@pytest.mark.slow
def test_cli_run_end_to_end(blobs_data, tmp_path):
    data, X, _ = blobs_data
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        ["run", str(data), "--output", str(out), "--n-clusters", "3", "--gamma", "0.1",
         "--n-components", "50", "--random-state", "0", "--feature-columns", "f0,f1,f2,f3",
         "--id-column", "id", "--block-size", "1000"], cli_env(tmp_path))
    assert code == 0, err[-3000:]
    assert "database is locked" not in err
    for word in ("labels", "summary.json", "clusters", "kernel_blocks", "embed"):
        assert word in stdout
    labels = pq.read_table(out / "labels").column("label").to_numpy()
    clean = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)


@pytest.mark.slow
def test_cli_bad_input_exits_2_with_the_message(tmp_path):
    code, _, err = run_cli(["run", str(tmp_path / "missing"), "--output", str(tmp_path / "o")],
                           cli_env(tmp_path))
    assert code == 2
    assert "does not exist" in err
    code, _, err = run_cli(["run", "x", "--gamma", "-1"], cli_env(tmp_path))
    assert code == 2
    assert "greater than 0" in err


def test_help_documents_every_parameter(capsys):
    from flows.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for name in SpectralParams.model_fields:
        if name in ("input", "dask"):
            continue
        flag = "--output" if name == "output_dir" else "--" + name.replace("_", "-")
        assert flag in text, flag
    for name in DaskOptions.model_fields:
        assert "--dask-" + name.replace("_", "-") in text


@pytest.mark.slow
def test_demo_on_digits(tmp_path):
    code, stdout, err = run_cli(["demo", "--output", str(tmp_path / "demo")], cli_env(tmp_path))
    assert code == 0, err[-3000:]
    ari = float(stdout.rsplit("ARI against the true digits:", 1)[1].split()[0])
    assert ari >= 0.7


@pytest.mark.slow
def test_cli_with_worker_processes_shares_one_local_server(blobs_data, tmp_path):
    """--dask-processes: the command starts one Prefect server that every worker uses."""
    data, X, _ = blobs_data
    out = tmp_path / "out"
    code, _stdout, err = run_cli(
        ["run", str(data), "--output", str(out), "--n-clusters", "3", "--gamma", "0.1",
         "--n-components", "50", "--random-state", "0", "--feature-columns", "f0,f1,f2,f3",
         "--id-column", "id", "--block-size", "1000", "--dask-processes",
         "--dask-n-workers", "2", "--dask-threads-per-worker", "1"], cli_env(tmp_path))
    assert code == 0, err[-3000:]
    assert "database is locked" not in err
    assert "Starting temporary server" not in err  # no per-process temporary API servers
    labels = pq.read_table(out / "labels").column("label").to_numpy()
    clean = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)
