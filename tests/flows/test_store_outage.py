"""The object store goes away in the middle of a run: the run fails soon, in one line that
names the store and says what to do, and the same command resumes once the store is back.

The store is a real S3 server (SeaweedFS), SIGKILLed while the run is paused in ``embed``
after two of its parts (a fault hook, so the kill lands at the same point every time) and
then started again on the same ports and data.
"""

import json
import os
import subprocess
import time
import uuid

import numpy as np
import pytest

from spectral_core import SpectralClustering
from spectral_pipeline.tasks.summary import all_stages

from .helpers import BIN, cli_env, current_api_url, run_args

pytestmark = pytest.mark.slow

#: How soon after the store goes away the run must have failed (the issue's bound).
BOUND_SECONDS = 60


@pytest.fixture
def s3():
    """A server of this test's own: the test kills it."""
    from tests.s3 import SeaweedS3

    server = SeaweedS3()
    yield server.start()
    server.stop()


def _upload(s3, folder) -> str:
    prefix = f"outage-{uuid.uuid4().hex[:8]}"
    client = s3.client()
    for f in sorted(folder.glob("*.parquet")):
        client.put_object(Bucket=s3.bucket, Key=f"{prefix}/data/{f.name}", Body=f.read_bytes())
    return prefix


def _wait_for(path, proc, seconds):
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"the run ended (status {proc.returncode}) before the pause:"
                                 f" {err[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no pause within {seconds} s")
        time.sleep(0.05)


def test_a_store_killed_mid_run_fails_it_in_one_line_and_the_rerun_resumes(
        s3, blobs_data, tmp_path):
    folder, X, _ = blobs_data
    prefix = _upload(s3, folder)
    url = f"s3://{s3.bucket}/{prefix}"
    args = run_args(url + "/data", url + "/out", block_size=1500, dask_threads_per_worker=2)
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url(), **s3.env())
    paused = tmp_path / "paused"
    proc = subprocess.Popen([str(BIN / "spectral-flow"), *args], text=True,
                            env={**env, "SPECTRAL_INJECT_FAULT": f"embed:2:pause:{paused}"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _wait_for(paused, proc, 240)
        written = [k for k in s3.keys(f"{prefix}/out/checkpoints/") if "/embed/part-" in k]
        s3.kill()
        gone = time.monotonic()
        paused.unlink()  # the run goes on, against a store that is not there
        try:
            _, err = proc.communicate(timeout=BOUND_SECONDS + 60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run still waits {BOUND_SECONDS + 60} s after the "
                                 "store went away") from None
        failed_after = time.monotonic() - gone
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    print(f"the run failed {failed_after:.1f} s after the store went away")
    assert proc.returncode == 1, err[-3000:]  # not 2: the user's input was fine
    assert failed_after <= BOUND_SECONDS, err[-3000:]
    lines = err.strip().splitlines()
    assert lines == [lines[-1]] and "Traceback" not in err, err[-3000:]  # one line
    assert lines[-1].startswith(f"spectral-flow: The store s3://{s3.bucket} (at "
                                f"{s3.endpoint_url}) is not answering"), lines[-1]
    assert "run the same command again" in lines[-1]
    assert len(written) >= 2

    s3.start(attempts=1)  # the same ports, the same data
    done = subprocess.run([str(BIN / "spectral-flow"), *args], env=env, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(s3.client().get_object(
        Bucket=s3.bucket, Key=f"{prefix}/out/summary.json")["Body"].read())
    states = {s: v["state"] for s, v in all_stages(summary).items()}
    assert states == {"validate_input": "Cached", "sample_landmarks": "Cached",
                      "kernel_blocks": "Cached", "eigendecompose": "Cached",
                      "embed": "Completed", "assign_labels": "Completed",
                      "write_outputs": "Completed"}
    embed = summary["stages"]["embed"]
    assert embed["parts_computed"] <= embed["parts"] - len(written)  # resumed, not redone
    labels = _labels(s3, prefix)
    clean = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)


def _labels(s3, prefix):
    import pandas as pd
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return pd.read_parquet(f"s3://{s3.bucket}/{prefix}/out/labels", storage_options={
        "key": s3.access_key, "secret": s3.secret_key, "endpoint_url": s3.endpoint_url,
    })["label"].to_numpy()
