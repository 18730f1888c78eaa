"""A run killed during `embed` resumes: done stages are Cached, only missing parts rerun."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from spectral_core import SpectralClustering

from .helpers import cli_env, current_api_url, run_cli


@pytest.mark.slow
def test_sigkill_during_embed_then_rerun_resumes(blobs_data, tmp_path):
    data, X, _ = blobs_data
    out = tmp_path / "out"
    args = ["run", str(data), "--output", str(out), "--n-clusters", "3", "--gamma", "0.1",
            "--n-components", "50", "--random-state", "0", "--feature-columns",
            "f0,f1,f2,f3", "--id-column", "id", "--block-size", "500",
            "--dask-threads-per-worker", "2"]
    # The same (real) API and PREFECT_HOME for both runs, as for an operator rerunning a job.
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url())
    code, _, err = run_cli(args, {**env, "SPECTRAL_INJECT_FAULT": "embed:2:kill"})
    assert code == -9, err[-2000:]
    assert not (out / "labels.parquet").exists()
    written = list(out.glob("checkpoints/*/embed/part-*.parquet"))
    assert 2 <= len(written) < 12
    assert not list(out.glob("checkpoints/*/embed/_SUCCESS.json"))

    code, stdout, err = run_cli(args, env)
    assert code == 0, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    states = {s: v["state"] for s, v in summary["stages"].items()}
    assert states == {"sample_landmarks": "Cached", "kernel_blocks": "Cached",
                      "eigendecompose": "Cached", "embed": "Completed",
                      "assign_labels": "Completed"}
    assert summary["stages"]["embed"]["parts"] == 12
    assert summary["stages"]["embed"]["parts_computed"] == 12 - len(written)
    assert "reused from checkpoint" in stdout

    labels = pq.read_table(out / "labels.parquet").column("label").to_numpy()
    clean = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)
