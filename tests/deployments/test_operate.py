"""Operating the deployments on a real Prefect server: the operations page's examples, run as
written (docs/operations.md)."""

import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ..docs.examples import block, run_bash, start_bash
from .conftest import ON_THE_SERVER, api, deployment, run_params, wait_for_run

pytestmark = [pytest.mark.slow, ON_THE_SERVER]


def _labels(out):
    return pq.read_table(out / "labels").column("label").to_numpy()


def test_the_schedule_produces_a_run_on_its_own(server, served):
    dep = deployment(server, "nightly")["id"]
    status, body = api(f"{server['url']}/deployments/{dep}")
    assert status == 200 and body["global_concurrency_limit"]["limit"] == 1, body  # no pile-up
    assert body["concurrency_options"]["collision_strategy"] == "CANCEL_NEW", body
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status, runs = api(f"{server['url']}/flow_runs/filter", "POST", {
            "deployments": {"id": {"any_": [dep]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
        assert status == 200
        if runs:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("no scheduled run completed: " + served["log"].read_text()[-3000:])
    assert (served["work"] / "nightly" / "labels" / "_SUCCESS.json").exists()
    # Paused now that it has proved itself: a run every 4 s would load the machine under the
    # tests that follow.
    status, _ = api(f"{server['url']}/deployments/{dep}/pause_deployment", "POST")
    assert status in (200, 204), status


def test_trigger_on_demand_through_the_rest_api(server, dataset, on_demand_runs):
    run = on_demand_runs.first  # triggered with create_flow_run, completed
    np.testing.assert_array_equal(_labels(Path(run["parameters"]["output_dir"])), dataset[2])
    # One run page: no subflow; the stage task runs, their logs, the progress artifacts and
    # the summary all belong to the run the user triggered.
    status, children = api(f"{server['url']}/flow_runs/filter", "POST", {
        "flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}})
    assert status == 200 and children == [], children
    status, tasks = api(f"{server['url']}/task_runs/filter", "POST", {
        "flow_runs": {"id": {"any_": [run["id"]]}}})
    assert status == 200
    assert {"plan", "validate_input", "sample_landmarks", "kernel_blocks", "eigendecompose",
            "embed", "assign_labels", "write_outputs"} <= {t["name"].rsplit("-", 1)[0]
                                                           for t in tasks}
    status, artifacts = api(f"{server['url']}/artifacts/filter", "POST", {
        "artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    assert status == 200
    keys = {a["key"] for a in artifacts}
    assert "spectral-clustering-summary" in keys
    assert {"kernel-blocks-pass-1-column-sums", "embed-embedding"} <= keys, keys
    assert all(a["data"] == 100.0 for a in artifacts if a["type"] == "progress"), artifacts
    ids = [run["id"]]
    wanted = [f"{stage}: done in" for stage in
              ("sample_landmarks", "kernel_blocks", "embed", "assign_labels")]
    deadline = time.monotonic() + 30  # log lines reach the server in batches, after the run
    while True:
        messages = _all_logs(server["url"], ids)
        missing = [w for w in wanted if not any(m.startswith(w) for m in messages)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, (missing, messages)


def _all_logs(url, flow_run_ids):
    """Every log message of these runs, page by page (the API returns at most 200 a call)."""
    messages, offset = [], 0
    while True:
        status, page = api(f"{url}/logs/filter", "POST", {
            "logs": {"flow_run_id": {"any_": flow_run_ids}}, "limit": 200, "offset": offset,
            "sort": "TIMESTAMP_ASC"})
        assert status == 200, page
        messages += [entry["message"] for entry in page]
        if len(page) < 200:
            return messages
        offset += len(page)


def test_rest_trigger_of_the_docs_keeps_the_deployments_other_parameters(server, served,
                                                                      dataset):
    """The operations page's REST example (`ops-trigger-rest`: the deployment's id, then
    create_flow_run with two parameters), run as written against $PREFECT_API_URL. Run
    parameters merge with the deployment's per field: every other parameter keeps the
    deployment's value."""
    done = run_bash(block("ops-trigger-rest"), cwd=served["work"], env=server["env"],
                    timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert "id" in answer, answer
    final = wait_for_run(server["url"], answer["id"])
    assert final["state_type"] == "COMPLETED", served["log"].read_text()[-3000:]
    out = served["work"] / "results" / "api"  # relative: the serving process's directory
    summary = json.loads((out / "summary.json").read_text())
    used = summary["parameters"]
    from spectral_pipeline.deployments.serve import RECOMMENDED

    assert used["n_clusters"] == 12
    for name, value in RECOMMENDED.items():
        if name != "n_clusters":
            assert used[name] == value, (name, used[name], value)
    assert str(dataset[0]) in used["input"]  # the deployment's input, not the flow's default
    np.testing.assert_array_equal(_labels(out), _library_labels(summary))
    assert len(set(_labels(out))) == 12


def _library_labels(summary):
    """The library's labels for the parameters and feature columns a run recorded."""
    import pandas as pd

    from spectral_core import SpectralClustering
    from spectral_core.params import PARAMETERS

    used = summary["parameters"]
    X = pd.read_parquet(used["input"])[used["feature_columns"]].to_numpy(np.float64)
    return SpectralClustering(**{k: used[k] for k in PARAMETERS if k in used}).fit(X).labels_


def test_invalid_parameter_is_rejected_and_no_run_starts(server, served, dataset, tmp_path):
    dep = deployment(server, "on-demand")["id"]
    count = {"flow_runs": {"deployment_id": {"any_": [dep]}}}
    before = api(f"{server['url']}/flow_runs/count", "POST", count)[1]
    for bad in ({"gamma": -1.0}, {"affinity": "rbff"}, {"n_clusters": 0}):
        status, body = api(f"{server['url']}/deployments/{dep}/create_flow_run", "POST",
                           {"parameters": run_params(dataset, tmp_path / "o", **bad)})
        assert 400 <= status < 500, (bad, status, body)
        assert next(iter(bad)) in json.dumps(body)
    assert api(f"{server['url']}/flow_runs/count", "POST", count)[1] == before


def test_the_ui_is_served_and_lists_the_deployments(server, served):
    import urllib.request

    with urllib.request.urlopen(server["ui"] + "/", timeout=30) as r:
        html = r.read().decode()
    assert r.status == 200 and "<html" in html.lower() and "<script" in html.lower()
    status, deps = api(f"{server['url']}/deployments/filter", "POST", {})
    assert status == 200
    assert {"nightly", "on-demand"} <= {d["name"] for d in deps}
    status, ui_settings = api(server["ui"] + "/ui-settings")
    assert status == 200 and ui_settings["api_url"] == server["url"], ui_settings


def test_cli_trigger_failure_then_retry_resumes(server, served):
    """The operations page's `ops-trigger-cli` (a run with two parameters), failing in embed
    after one part, then its `ops-retry` (the logs, then `prefect flow-run retry $RUN_ID`):
    the retried run resumes, earlier stages Cached, and its labels equal the library's."""
    out = served["work"] / "results" / "adhoc"  # relative: the serving process's directory
    served["fault"].write_text("embed:1:raise")  # embed fails after one part, every attempt
    try:
        started = run_bash(block("ops-trigger-cli"), cwd=served["work"], env=server["env"],
                           timeout=120)
        assert started.returncode == 0, started.stderr[-2000:]
        run_id = started.stdout.split("UUID:")[1].split()[0]
        failed = wait_for_run(server["url"], run_id)
        assert failed["state_type"] == "FAILED", failed["state_type"]
    finally:
        served["fault"].unlink()
    assert not (out / "labels" / "_SUCCESS.json").exists()
    done_parts = len(list(out.glob("checkpoints/*/embed/part-*.parquet")))
    assert 1 <= done_parts < 3  # the on-demand input is 3 files: 3 blocks
    retried = run_bash(block("ops-retry"), cwd=served["work"],
                       env={**server["env"], "RUN_ID": run_id}, timeout=120)
    assert retried.returncode == 0, retried.stderr[-2000:]
    assert "InjectedFault" in retried.stdout, retried.stdout[-3000:]  # the logs say why
    final = wait_for_run(server["url"], run_id)
    assert final["state_type"] == "COMPLETED", served["log"].read_text()[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert {s: v["state"] for s, v in summary["stages"].items()} == {
        "sample_landmarks": "Cached", "kernel_blocks": "Cached", "eigendecompose": "Cached",
        "embed": "Completed", "assign_labels": "Completed"}
    assert summary["stages"]["embed"]["parts_computed"] == 3 - done_parts
    assert summary["parameters"]["n_clusters"] == 12
    np.testing.assert_array_equal(_labels(out), _library_labels(summary))


def test_run_on_an_existing_dask_cluster_through_the_server(dataset, on_demand_runs):
    """The first on-demand run (tests/deployments/conftest.py) ran on a scheduler and two
    worker processes started beforehand, its address in the run's ``dask`` parameter."""
    run, executed = on_demand_runs.first, on_demand_runs.executed
    assert run["parameters"]["dask"]["address"] == on_demand_runs.address
    np.testing.assert_array_equal(_labels(Path(run["parameters"]["output_dir"])), dataset[2])
    # The block passes ran on this cluster: 3,000 rows in blocks of 500 are 6 parts a pass.
    # (Which worker takes which part is the Dask scheduler's choice.)
    assert len(executed) == 2 and sum(executed.values()) >= 6, executed


def test_work_pool_deployments_from_prefect_yaml(server, dataset, tmp_path):
    """The operations page's work-pool examples, as written: `ops-work-pool` (create the
    pool), `ops-deploy-yaml` (prefect deploy with prefect.yaml, from the checkout), then
    `ops-worker` (a worker) runs a triggered run. (The page's other route, `ops-deploy-module`,
    runs from an installed wheel in tests/test_packaging.py.)"""
    from .conftest import ROOT, stop

    env = {**server["env"], "SPECTRAL_NIGHTLY_INPUT": str(dataset[0]),
           "SPECTRAL_NIGHTLY_OUTPUT": str(tmp_path / "nightly"),
           "SPECTRAL_ON_DEMAND_INPUT": str(dataset[0]),
           "SPECTRAL_ON_DEMAND_OUTPUT": str(tmp_path / "on-demand"),
           "SPECTRAL_NIGHTLY_CRON": "30 3 * * *",
           # The worker starts before the run exists: it asks for work every second, not
           # every 10 s (Prefect's default), so it picks the run up without waiting.
           "PREFECT_WORKER_QUERY_SECONDS": "1"}
    for name in ("ops-work-pool", "ops-deploy-yaml"):
        done = run_bash(block(name), cwd=ROOT, env=env)  # $PWD: the checkout
        assert done.returncode == 0, (name, done.stdout[-3000:] + done.stderr[-3000:])
    deps = _pool_deployments(server)
    nightly = next(d for d in deps if d["name"] == "nightly")
    assert nightly["schedules"][0]["schedule"]["cron"] == "30 3 * * *"
    worker = start_bash(block("ops-worker"), cwd=ROOT, env=env,
                        log=open(tmp_path / "worker.log", "w"))
    try:
        _run_on(server, deps, dataset, tmp_path / "pool", tmp_path / "worker.log")
    finally:
        stop(worker)


def _pool_deployments(server):
    status, deps = api(f"{server['url']}/deployments/filter", "POST",
                       {"work_pools": {"name": {"any_": ["spectral-pool"]}}})
    assert status == 200 and {d["name"] for d in deps} == {"nightly", "on-demand"}, deps
    return deps


def _run_on(server, deps, dataset, out, log):
    on_demand = next(d for d in deps if d["name"] == "on-demand")
    status, run = api(f"{server['url']}/deployments/{on_demand['id']}/create_flow_run",
                      "POST", {"parameters": run_params(dataset, out)})
    assert status == 201, run
    final = wait_for_run(server["url"], run["id"], timeout=300)
    assert final["state_type"] == "COMPLETED", log.read_text()[-3000:]
    np.testing.assert_array_equal(_labels(out), dataset[2])


def test_a_path_outside_the_allowed_roots_is_refused(server, served, dataset, tmp_path):
    dep = deployment(server, "on-demand")["id"]
    params = run_params(dataset, tmp_path / "out")
    params["input"] = "../../../../etc"
    status, run = api(f"{server['url']}/deployments/{dep}/create_flow_run", "POST",
                      {"parameters": params})
    assert status == 201, run
    final = wait_for_run(server["url"], run["id"])
    assert final["state_type"] == "FAILED"
    assert "outside the allowed roots" in final["state"]["message"]
    assert not (tmp_path / "out").exists()
