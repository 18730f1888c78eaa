"""Operating the deployments on a real Prefect server (the README's "Operate it" section)."""

import json
import subprocess
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from .conftest import BIN, ON_THE_SERVER, api, wait_for_run

pytestmark = [pytest.mark.slow, ON_THE_SERVER]


def _run_params(dataset, out, **extra):
    folder, params, _ = dataset
    return {"input": str(folder), "output_dir": str(out), "id_column": "id",
            "feature_columns": ["f0", "f1", "f2", "f3"], "affinity": "rbf",
            "landmarks": "random", **params, **extra}


def _deployment_id(server, name):
    status, dep = api(f"{server['url']}/deployments/name/spectral-clustering/{name}")
    assert status == 200, dep
    return dep["id"]


def _labels(out):
    return pq.read_table(out / "labels").column("label").to_numpy()


def test_the_schedule_produces_a_run_on_its_own(server, served):
    dep = _deployment_id(server, "nightly")
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
        time.sleep(2)
    else:
        raise AssertionError("no scheduled run completed: " + served["log"].read_text()[-3000:])
    assert (served["work"] / "nightly" / "labels" / "_SUCCESS.json").exists()
    # Paused now that it has proved itself: a run every 20 s would load the machine under the
    # tests that follow.
    status, _ = api(f"{server['url']}/deployments/{dep}/pause_deployment", "POST")
    assert status in (200, 204), status


def test_trigger_on_demand_through_the_rest_api(server, served, dataset, tmp_path):
    dep = _deployment_id(server, "on-demand")
    status, run = api(f"{server['url']}/deployments/{dep}/create_flow_run", "POST",
                      {"parameters": _run_params(dataset, tmp_path / "out")})
    assert status == 201, run
    final = wait_for_run(server["url"], run["id"])
    assert final["state_type"] == "COMPLETED", served["log"].read_text()[-3000:]
    np.testing.assert_array_equal(_labels(tmp_path / "out"), dataset[2])
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


def test_a_run_that_sets_one_parameter_keeps_the_deployments_others(server, served, dataset,
                                                                  tmp_path):
    """Run parameters merge with the deployment's per field: the recommended configuration
    stays unless a field is overridden (the README's trigger example)."""
    dep = _deployment_id(server, "on-demand")
    out = tmp_path / "out"
    status, run = api(f"{server['url']}/deployments/{dep}/create_flow_run", "POST",
                      {"parameters": {"n_clusters": 3, "output_dir": str(out)}})
    assert status == 201, run
    final = wait_for_run(server["url"], run["id"])
    assert final["state_type"] == "COMPLETED", served["log"].read_text()[-3000:]
    used = json.loads((out / "summary.json").read_text())["parameters"]
    from spectral_pipeline.deployments.serve import RECOMMENDED

    assert used["n_clusters"] == 3
    for name, value in RECOMMENDED.items():
        if name != "n_clusters":
            assert used[name] == value, (name, used[name], value)
    assert str(dataset[0]) in used["input"]  # the deployment's input, not the flow's default
    assert len(set(_labels(out))) == 3


def test_invalid_parameter_is_rejected_and_no_run_starts(server, served, dataset, tmp_path):
    dep = _deployment_id(server, "on-demand")
    count = {"flow_runs": {"deployment_id": {"any_": [dep]}}}
    before = api(f"{server['url']}/flow_runs/count", "POST", count)[1]
    for bad in ({"gamma": -1.0}, {"affinity": "rbff"}, {"n_clusters": 0}):
        status, body = api(f"{server['url']}/deployments/{dep}/create_flow_run", "POST",
                           {"parameters": _run_params(dataset, tmp_path / "o", **bad)})
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


def test_cli_trigger_failure_then_retry_resumes(server, served, dataset, tmp_path):
    out = tmp_path / "out"
    served["fault"].write_text("embed:2:raise")  # embed fails after two parts, every attempt
    try:
        result = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "spectral-clustering/on-demand",
             "--params", json.dumps(_run_params(dataset, out, block_size=500))],
            env=server["env"], capture_output=True, text=True, timeout=120, check=True)
        run_id = result.stdout.split("UUID:")[1].split()[0]
        failed = wait_for_run(server["url"], run_id)
        assert failed["state_type"] == "FAILED", failed["state_type"]
    finally:
        served["fault"].unlink()
    assert not (out / "labels" / "_SUCCESS.json").exists()
    done_parts = len(list(out.glob("checkpoints/*/embed/part-*.parquet")))
    assert done_parts >= 2
    subprocess.run([str(BIN / "prefect"), "flow-run", "retry", run_id], env=server["env"],
                   capture_output=True, text=True, timeout=120, check=True)
    final = wait_for_run(server["url"], run_id)
    assert final["state_type"] == "COMPLETED", served["log"].read_text()[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert {s: v["state"] for s, v in summary["stages"].items()} == {
        "sample_landmarks": "Cached", "kernel_blocks": "Cached", "eigendecompose": "Cached",
        "embed": "Completed", "assign_labels": "Completed"}
    assert summary["stages"]["embed"]["parts_computed"] == 6 - done_parts
    np.testing.assert_array_equal(_labels(out), dataset[2])


def test_run_on_an_existing_dask_cluster_through_the_server(server, served, dataset, tmp_path):
    from distributed import Client

    from spectral_pipeline.flows.server import free_port

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=server["env"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1",
                                "--no-dashboard", "--host", "127.0.0.1"], env=server["env"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(2)]
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        dep = _deployment_id(server, "on-demand")
        params = _run_params(dataset, tmp_path / "out", block_size=500)
        params["dask"] = {"address": address}
        status, run = api(f"{server['url']}/deployments/{dep}/create_flow_run", "POST",
                          {"parameters": params})
        assert status == 201, run
        assert wait_for_run(server["url"], run["id"])["state_type"] == "COMPLETED"
        np.testing.assert_array_equal(_labels(tmp_path / "out"), dataset[2])
        with Client(address) as client:
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        assert len(executed) == 2 and all(v >= 3 for v in executed.values()), executed
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_readme_rest_commands_trigger_a_run(server, served, dataset, tmp_path):
    """The README's two curl commands, run as written (with this test's paths)."""
    clean = dataset[2]
    body = json.dumps({"parameters": _run_params(dataset, tmp_path / "api")})
    script = (
        "set -euo pipefail\n"
        "DEP=$(curl -s $PREFECT_API_URL/deployments/name/spectral-clustering/on-demand | "
        "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])')\n"
        f"curl -s -X POST $PREFECT_API_URL/deployments/$DEP/create_flow_run "
        f"-H 'Content-Type: application/json' -d '{body}'\n"
    )
    out = subprocess.run(["bash", "-c", script], env=server["env"], capture_output=True,
                         text=True, timeout=60, check=True)
    assert "id" in json.loads(out.stdout), out.stdout[-2000:]
    run_id = json.loads(out.stdout)["id"]
    watch = subprocess.run([str(BIN / "prefect"), "flow-run", "watch", run_id],
                           env=server["env"], capture_output=True, text=True, timeout=300)
    assert wait_for_run(server["url"], run_id)["state_type"] == "COMPLETED", watch.stdout[-2000:]
    np.testing.assert_array_equal(_labels(tmp_path / "api"), clean)


def test_work_pool_deployments_from_prefect_yaml(server, dataset, tmp_path):
    """prefect.yaml on a process work pool: create the pool, deploy, start a worker, run."""
    from .conftest import ROOT, stop

    env = {**server["env"], "SPECTRAL_PROJECT_DIR": str(ROOT),
           "SPECTRAL_NIGHTLY_INPUT": str(dataset[0]),
           "SPECTRAL_NIGHTLY_OUTPUT": str(tmp_path / "nightly"),
           "SPECTRAL_ON_DEMAND_INPUT": str(dataset[0]),
           "SPECTRAL_ON_DEMAND_OUTPUT": str(tmp_path / "on-demand"),
           "SPECTRAL_NIGHTLY_CRON": "30 3 * * *"}
    prefect = str(BIN / "prefect")
    subprocess.run([prefect, "work-pool", "create", "spectral-pool", "--type", "process"],
                   env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    deploy = subprocess.run([prefect, "--no-prompt", "deploy", "--all", "--prefect-file",
                             "deployments/prefect.yaml"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    status, dep = api(f"{server['url']}/deployments/filter", "POST",
                      {"work_pools": {"name": {"any_": ["spectral-pool"]}}})
    assert status == 200 and {d["name"] for d in dep} == {"nightly", "on-demand"}
    nightly = next(d for d in dep if d["name"] == "nightly")
    assert nightly["schedules"][0]["schedule"]["cron"] == "30 3 * * *"
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([prefect, "worker", "start", "--pool", "spectral-pool"], env=env,
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        on_demand = next(d for d in dep if d["name"] == "on-demand")
        status, run = api(f"{server['url']}/deployments/{on_demand['id']}/create_flow_run",
                          "POST", {"parameters": _run_params(dataset, tmp_path / "pool")})
        assert status == 201, run
        final = wait_for_run(server["url"], run["id"], timeout=300)
        assert final["state_type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
        np.testing.assert_array_equal(_labels(tmp_path / "pool"), dataset[2])
    finally:
        stop(worker)


def test_a_path_outside_the_allowed_roots_is_refused(server, served, dataset, tmp_path):
    dep = _deployment_id(server, "on-demand")
    params = _run_params(dataset, tmp_path / "out")
    params["input"] = "../../../../etc"
    status, run = api(f"{server['url']}/deployments/{dep}/create_flow_run", "POST",
                      {"parameters": params})
    assert status == 201, run
    final = wait_for_run(server["url"], run["id"])
    assert final["state_type"] == "FAILED"
    assert "outside the allowed roots" in final["state"]["message"]
    assert not (tmp_path / "out").exists()
