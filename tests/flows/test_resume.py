"""The flow process SIGKILLed in each stage in turn: a rerun resumes and agrees."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from spectral_core import SpectralClustering
from spectral_pipeline.tasks.stages import STAGES
from spectral_pipeline.tasks.summary import all_stages

from .helpers import cli_env, current_api_url, run_cli

# (stage, parts written before the kill). kernel_blocks has 2 × 12 parts, embed 12.
KILLS = [("sample_landmarks", 1), ("kernel_blocks", 3), ("eigendecompose", 1), ("embed", 2),
         ("assign_labels", 1)]


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "parts"), KILLS, ids=[k[0] for k in KILLS])
def test_sigkill_in_a_stage_then_rerun_resumes(blobs_data, tmp_path, stage, parts):
    data, X, _ = blobs_data
    out = tmp_path / "out"
    args = ["run", str(data), "--output", str(out), "--n-clusters", "3", "--gamma", "0.1",
            "--n-components", "50", "--random-state", "0", "--feature-columns",
            "f0,f1,f2,f3", "--id-column", "id", "--block-size", "500",
            "--dask-threads-per-worker", "2"]
    # The same (real) API and PREFECT_HOME for both runs, as for an operator rerunning a job.
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url())
    code, _, err = run_cli(args, {**env, "SPECTRAL_INJECT_FAULT": f"{stage}:{parts}:kill"})
    assert code == -9, err[-2000:]
    assert not (out / "labels" / "_SUCCESS.json").exists()
    assert not list(out.glob(f"checkpoints/*/{stage}/_SUCCESS.json"))
    written = list(out.glob(f"checkpoints/*/{stage}/**/part-*.parquet"))

    code, stdout, err = run_cli(args, env)
    assert code == 0, err[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    states = {s: v["state"] for s, v in all_stages(summary).items()}
    killed = STAGES.index(stage)
    assert states == {s: "Cached" if i < killed else "Completed" for i, s in enumerate(STAGES)}
    if stage in ("kernel_blocks", "embed"):
        info = summary["stages"][stage]
        assert len(written) >= parts
        assert info["parts_computed"] == info["parts"] - len(written)
    if killed:
        assert "reused from checkpoint" in stdout
    labels = pq.read_table(out / "labels").column("label").to_numpy()
    clean = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)
