"""One run SIGKILLed in each stage in turn, the next run resuming it: each rerun keeps what
the killed one had written, and the last one completes with the library's labels."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from spectral_core import SpectralClustering
from spectral_pipeline.tasks.stages import STAGES
from spectral_pipeline.tasks.summary import all_stages

from .helpers import cli_env, current_api_url, run_args, run_cli

# (stage, parts written before the kill). kernel_blocks has 2 × 12 parts, embed 12.
KILLS = [("sample_landmarks", 1), ("kernel_blocks", 3), ("eigendecompose", 1), ("embed", 2),
         ("assign_labels", 1)]
#: The stages whose parts a rerun keeps, computing only the rest (a stage of one part computes
#: it again; assign_labels fits its clusterer again and labels every part).
BLOCK_STAGES = ("kernel_blocks", "embed")


def _parts(out, stage) -> dict[str, tuple[int, int]]:
    """A stage's checkpoint parts on disk: path -> (inode, mtime): a part written again by a
    later run changes both."""
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in out.glob(f"checkpoints/*/{stage}/**/*.parquet")}


def _committed(out, stage) -> bool:
    return bool(list(out.glob(f"checkpoints/*/{stage}/_SUCCESS.json")))


@pytest.mark.slow
def test_a_run_killed_in_each_stage_in_turn_resumes_every_time(blobs_data, tmp_path):
    data, X, _ = blobs_data
    out = tmp_path / "out"
    args = run_args(data, out, block_size=500, dask_threads_per_worker=2)
    # The same (real) API and PREFECT_HOME for every run, as for an operator rerunning a job.
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url())
    kept = {}  # the parts each killed run left of the stage it was killed in
    for stage, parts in KILLS:
        code, _, err = run_cli(args, {**env, "SPECTRAL_INJECT_FAULT": f"{stage}:{parts}:kill"})
        assert code == -9, (stage, err[-2000:])
        assert not _committed(out, stage), stage
        assert not (out / "labels" / "_SUCCESS.json").exists()
        kept[stage] = _parts(out, stage)
        assert len(kept[stage]) >= parts, (stage, kept[stage])
        for earlier in STAGES[:STAGES.index(stage)]:
            # resumed by this run: committed, and every part the killed run had left is the
            # same file, not written again
            assert _committed(out, earlier), (stage, earlier)
            if earlier in BLOCK_STAGES:
                now = _parts(out, earlier)
                assert {p: now.get(p) for p in kept[earlier]} == kept[earlier], earlier

    code, stdout, err = run_cli(args, env)
    assert code == 0, err[-2000:]
    assert "reused from checkpoint" in stdout
    summary = json.loads((out / "summary.json").read_text())
    states = {s: v["state"] for s, v in all_stages(summary).items()}
    last = STAGES.index(KILLS[-1][0])
    assert states == {s: "Cached" if i < last else "Completed" for i, s in enumerate(STAGES)}
    labels = pq.read_table(out / "labels").column("label").to_numpy()
    clean = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)
