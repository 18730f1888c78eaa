"""The flow with its input, checkpoints and outputs in a real S3 server (SeaweedFS).

Credentials reach the flow, the CLI and the Dask workers only through the standard AWS
environment variables; the tests check that the secret never shows up in what the run
stores or reports.
"""

import json
import os
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spectral_core import SpectralClustering
from spectral_pipeline.flows.params import SpectralParams
from spectral_pipeline.flows.spectral import run_spectral

from ..clusters import ROOT, start_cluster, stop_cluster
from .helpers import cli_env, current_api_url, run_args, run_cli

#: One SeaweedFS server for the module (it takes 3-9 s to start): its tests go to one
#: pytest-xdist worker, which starts it once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("s3-server")]

FEATURES = ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="module")
def s3():
    from tests.s3 import SeaweedS3

    server = SeaweedS3().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3, monkeypatch):
    """This process talks to the server through the environment, as a deployment would."""
    import s3fs

    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_data(s3, blobs_data):
    """The blobs dataset uploaded under a fresh prefix; returns (prefix URL, X)."""
    folder, X, _ = blobs_data
    prefix = f"run-{uuid.uuid4().hex[:8]}"
    client = s3.client()
    for f in sorted(folder.glob("*.parquet")):
        client.put_object(Bucket=s3.bucket, Key=f"{prefix}/data/{f.name}", Body=f.read_bytes())
    return f"s3://{s3.bucket}/{prefix}", X


def _library(X):
    return SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)


def _params(data, out, **kw):
    return SpectralParams(input=data, output_dir=out, feature_columns=FEATURES, id_column="id",
                          block_size=1500, n_clusters=3, gamma=0.1, n_components=50,
                          random_state=0, **kw)


def _labels(url):
    table = pd.read_parquet(url + "/labels")  # the dataset reads as one table, in row order
    return table["id"].to_numpy(), table["label"].to_numpy()


def test_sigkill_mid_embed_on_s3_then_rerun_resumes(s3, s3_data, tmp_path):
    prefix, X = s3_data
    out = prefix + "/out"
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url(), **s3.env())
    args = run_args(prefix + "/data", out, block_size=1500)  # 4 parts a pass
    code, _, err = run_cli(args, {**env, "SPECTRAL_INJECT_FAULT": "embed:2:kill"})
    assert code == -9, err[-2000:]
    key = prefix.split("/", 3)[3]
    written = [k for k in s3.keys(f"{key}/out/checkpoints/") if "/embed/part-" in k]
    assert len(written) >= 2
    assert not [k for k in s3.keys(f"{key}/out/") if k.endswith("embed/_SUCCESS.json")]

    code, stdout, err = run_cli(args, env)
    assert code == 0, err[-2000:]
    summary = json.loads(s3.client().get_object(Bucket=s3.bucket, Key=f"{key}/out/summary.json")
                         ["Body"].read())
    states = {s: v["state"] for s, v in summary["stages"].items()}
    assert states == {"sample_landmarks": "Cached", "kernel_blocks": "Cached",
                      "eigendecompose": "Cached", "embed": "Completed",
                      "assign_labels": "Completed"}
    embed = summary["stages"]["embed"]
    assert embed["parts_computed"] == embed["parts"] - len(written)
    assert f"{len(written)}/{embed['parts']} parts reused" in stdout
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    labels = pd.read_parquet(out + "/labels", storage_options={
        "key": s3.access_key, "secret": s3.secret_key, "endpoint_url": s3.endpoint_url})
    np.testing.assert_array_equal(labels["label"].to_numpy(), _library(X).labels_)
    _no_secret_anywhere(s3.secret_key, summary, stdout + err)


def _no_secret_anywhere(secret, summary, printed):
    """Not in the summary, the printed output, or anything the Prefect API holds for runs."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    assert secret not in json.dumps(summary)
    assert secret not in printed

    async def everything():
        async with get_client() as client:
            runs = await client.read_flow_runs(limit=200)
            texts = [json.dumps(r.parameters, default=str) for r in runs]
            texts += [str(a.data) + str(a.description) for a in
                      await client.read_artifacts(limit=200)]
            for r in runs[:50]:
                logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(
                    any_=[r.id])), limit=200)
                texts += [log.message for log in logs]
            return texts

    texts = asyncio.run(everything())
    assert texts, "the API holds the runs of this session"
    assert not [t for t in texts if secret in t]


def test_a_wrong_secret_fails_before_any_block_pass_and_writes_nothing(s3, s3_data,
                                                                       tmp_path):
    prefix, _ = s3_data
    key = prefix.split("/", 3)[3]
    before = s3.keys(key + "/")
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url(), **s3.env(secret="not-it"))
    code, _, err = run_cli(run_args(prefix + "/data", prefix + "/out", block_size=1500), env)
    assert code == 2, err[-2000:]
    assert "signature" in err.lower() and "AWS_SECRET_ACCESS_KEY" in err
    assert "not-it" not in err
    assert s3.keys(key + "/") == before


def _outside(directory, *paths):
    return not any(Path(p).resolve().is_relative_to(Path(directory).resolve()) for p in paths)


def test_the_flow_on_s3_on_workers_that_share_no_disk_equals_the_library_and_a_local_run(
        s3_env, s3_data, blobs_data, tmp_path, tmp_path_factory):
    """The flow with its input, checkpoints and outputs (the embedding too) in S3, run by a
    scheduler and two workers, each with an empty private tmpfs over this session's temporary
    directories (and over /tmp itself unless the interpreter or the checkout lives there) and
    over Prefect's home: the only thing they share with this process is S3. Its labels are
    the library's and those of the same run on local disk."""
    from distributed import Client

    prefix, X = s3_data
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url(), **s3_env.env())
    base = str(tmp_path_factory.getbasetemp())
    hidden = [base, os.path.expanduser("~/.prefect"), os.environ["PREFECT_HOME"]]
    if _outside("/tmp", sys.prefix, ROOT):
        hidden.insert(0, "/tmp")
    address, procs = start_cluster([{}, {}], env, private_dirs=hidden)
    try:
        run_spectral(_params(prefix + "/data", prefix + "/out", persist_embedding=True,
                             dask={"address": address}))
        with Client(address) as client:
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
            local = [str(tmp_path), str(blobs_data[0])]  # where a local run would look
            seen = client.run(lambda: [os.path.exists(p) for p in local])
    finally:
        stop_cluster(procs)
    ids, labels = _labels(prefix + "/out")
    np.testing.assert_array_equal(ids, np.arange(X.shape[0]) + 1000)
    np.testing.assert_array_equal(labels, _library(X).labels_)
    # The block passes ran on the two workers: 6,000 rows in blocks of 1,500 are 4 parts a
    # pass. (Which worker takes which part is the Dask scheduler's choice, not the flow's.)
    assert len(executed) == 2 and sum(executed.values()) >= 4, executed
    assert all(os.path.exists(p) for p in local)  # here they exist; on the workers they don't
    assert seen and not any(any(found) for found in seen.values()), seen
    embedding = pd.read_parquet(prefix + "/out/embedding")
    assert list(embedding.columns) == ["id", "u_0", "u_1", "u_2"]
    key = prefix.split("/", 3)[3]
    written = s3_env.keys(f"{key}/out/")
    assert f"{key}/out/labels/_SUCCESS.json" in written
    assert f"{key}/out/summary.json" in written
    assert not [k for k in written if k.endswith(".tmp")]
    # The same run on local disk, in this process's own cluster.
    run_spectral(_params(str(blobs_data[0]), str(tmp_path / "local")))
    np.testing.assert_array_equal(labels, _labels(str(tmp_path / "local"))[1])


def test_the_docs_s3_command_against_an_s3_server(s3, tmp_path):
    """The object-storage page's command (`storage-s3-run`), as written: the input in bucket
    `lake` under `events/`, the output in bucket `results`, the credentials and the endpoint
    in the standard AWS environment."""
    import s3fs
    from sklearn.metrics import adjusted_rand_score

    from ..docs.examples import block, customers, run_bash

    truth = customers(tmp_path / "events", centres=12)
    client = s3.client()
    for bucket in ("lake", "results"):
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
    for f in sorted((tmp_path / "events").glob("*.parquet")):
        client.put_object(Bucket="lake", Key=f"events/{f.name}", Body=f.read_bytes())
    env = cli_env(tmp_path, PREFECT_API_URL=current_api_url(), **s3.env())
    done = run_bash(block("storage-s3-run"), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    s3fs.S3FileSystem.clear_instance_cache()
    labels = pd.read_parquet("s3://results/segments/labels", storage_options={
        "key": s3.access_key, "secret": s3.secret_key, "endpoint_url": s3.endpoint_url})
    assert labels["customer_id"].tolist() == list(range(10_000, 13_000))
    assert adjusted_rand_score(truth, labels["label"]) > 0.99  # 12 blobs in 8 dimensions
    summary = json.loads(client.get_object(Bucket="results", Key="segments/summary.json")
                         ["Body"].read())
    assert summary["parameters"]["n_clusters"] == 12
    assert s3.secret_key not in json.dumps(summary) + done.stdout + done.stderr
