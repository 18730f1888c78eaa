"""A real `prefect server start` on 127.0.0.1 with its database in a real PostgreSQL, and the
deployments served against it: one server for every test in this folder."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from spectral_pipeline.flows.server import free_port

from ..clusters import send_prefect_logs, start_cluster, stop_cluster
from ..docs.examples import block, start_bash, with_ports
from ..system import apt_install

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]

#: The tests that use the session's server and served deployments run in order on one
#: pytest-xdist worker: one server and one `spectral_pipeline.deployments.serve` for all of
#: them, and the nightly schedule's test (paused after it) sees no other test's runs.
ON_THE_SERVER = pytest.mark.xdist_group("deployments-server")


def api(url, method="GET", body=None, timeout=30):
    """(status, JSON body) of a request to the Prefect REST API; 4xx/5xx are returned too.

    A 503 (the server's database busy, seen right after start-up on a loaded machine) is
    retried for up to a minute, as Prefect's own client does.
    """
    deadline = time.monotonic() + 60
    while True:
        status, body_out = _api_once(url, method, body, timeout)
        if status != 503 or time.monotonic() > deadline:
            return status, body_out
        time.sleep(1)


def _api_once(url, method, body, timeout):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def base_env(home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_healthy(url, proc, log_path, timeout=180.0):
    """Poll ``url``/health until it answers 200; if the server exits or the time runs out,
    stop it and fail with the end of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if api(url + "/health", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    stop(proc)
    pytest.fail("prefect server did not start: " + log_path.read_text()[-3000:])


def start_server(port: int, env: dict[str, str], cwd: Path, log_path: Path,
                 before: str = "") -> subprocess.Popen:
    """The operations page's `ops-server-start` example (it exports PREFECT_API_URL, then
    starts `prefect server start` on 127.0.0.1), run as written but on ``port`` instead of
    the documented 4200; ``before`` is another example run first in the same shell (the
    PostgreSQL one)."""
    script = before + with_ports(block("ops-server-start"), {4200: port})
    return start_bash(script, cwd=cwd, env=env, log=open(log_path, "w"))


def _pg_bin() -> str:
    def initdb():
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        return found[-1] if found else None

    found = apt_install("postgresql", initdb)
    if not found:
        pytest.fail("PostgreSQL is not installed (Debian: apt-get install postgresql); the "
                    "deployments' server keeps its database there.")
    return os.path.dirname(found)


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL cluster on 127.0.0.1 and a free port, run as 'postgres'.

    Its directory is a fresh one under /tmp: pytest's tmp_path lives in a root-only folder
    that the postgres user (PostgreSQL refuses to run as root) cannot enter.
    """
    pg = _pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="spectral-pg-"))
    data = folder / "pgdata"
    data.mkdir()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run([*as_user, f"{pg}/initdb", "-D", str(data), "-U", "prefect", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, f"{pg}/pg_ctl", "-D", str(data), "-l", str(folder / "pg.log"),
                    "-o", f"-p {port} -k {folder} -h 127.0.0.1", "-w", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run([*as_user, f"{pg}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U",
                        "prefect", "prefect"], check=True, capture_output=True)
        yield {"port": port, "url": f"postgresql+asyncpg://prefect@127.0.0.1:{port}/prefect",
               "psql": [f"{pg}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "prefect",
                        "-d", "prefect", "-tAc"]}
    finally:
        subprocess.run([*as_user, f"{pg}/pg_ctl", "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def server(tmp_path_factory, postgres):
    """The operations page's server on PostgreSQL: its `ops-postgres` setting, then its
    `ops-server-start` in the same shell (the API, the UI and the scheduler), as written but
    on this session's ports.

    PostgreSQL, not the default SQLite file: under load, SQLite's single writer makes the
    server answer 503 ("database is locked", seen in this server's log during full runs).
    Prefect's Python client retries a 503, the UI's JavaScript does not: a form submitted in
    that moment stays on its page and starts no run (how test_ui_form's untouched form failed,
    once, in a full run).
    """
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    setting = with_ports(block("ops-postgres"), {5432: postgres["port"]})
    proc = start_server(port, base_env(home, PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS=2),
                        home, home / "server.log", before=setting)
    wait_healthy(url, proc, home / "server.log")
    yield {"url": url, "ui": f"http://127.0.0.1:{port}", "home": home, "setting": setting,
           "env": base_env(home, PREFECT_API_URL=url)}
    stop(proc)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """Three blobs as Parquet, and the labels of the library on them (the clean run)."""
    from sklearn.datasets import make_blobs

    from spectral_core import SpectralClustering

    from ..flows.conftest import write_dataset

    X, y = make_blobs(3000, n_features=4, centers=3, cluster_std=0.6, random_state=3)
    folder = write_dataset(tmp_path_factory.mktemp("deploy-data") / "data", X, y)
    params = {"n_clusters": 3, "gamma": 0.1, "n_components": 50, "random_state": 0}
    clean = SpectralClustering(**params).fit(X).labels_
    return folder, params, np.asarray(clean)


@pytest.fixture(scope="session")
def served(server, dataset, tmp_path_factory):
    """The operations page's `ops-serve` example (`python -m
    spectral_pipeline.deployments.serve`), started outside the checkout (the deployments name
    the flow by its module), configured through the environment as the page says; its
    nightly runs every 4 s (a run that outlasts that interval cancels the next, CANCEL_NEW:
    the first run is due sooner, and the ones due while it runs are cancelled, not run)."""
    work = tmp_path_factory.mktemp("serve")
    fault = work / "fault"
    env = {**server["env"], "SPECTRAL_NIGHTLY_INPUT": str(dataset[0]),
           "SPECTRAL_NIGHTLY_OUTPUT": str(work / "nightly"), "SPECTRAL_NIGHTLY_INTERVAL": "4",
           "SPECTRAL_ON_DEMAND_INPUT": str(dataset[0]),
           "SPECTRAL_ON_DEMAND_OUTPUT": str(work / "on-demand"),
           "SPECTRAL_INJECT_FAULT": f"@{fault}",
           # It asks for due runs every second (Prefect's default is 10 s): a triggered run
           # starts without waiting.
           "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           # Paths in parameters must resolve inside pytest's temporary directory.
           "SPECTRAL_ALLOWED_ROOTS": str(tmp_path_factory.getbasetemp())}
    proc = start_bash(block("ops-serve"), cwd=work, env=env, log=open(work / "serve.log", "w"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, _ = api(server["url"] + "/deployments/name/spectral-clustering/on-demand")
        if status == 200:
            break
        assert proc.poll() is None, (work / "serve.log").read_text()[-3000:]
        time.sleep(0.25)
    yield {"work": work, "fault": fault, "log": work / "serve.log"}
    stop(proc)


def run_params(dataset, out, **extra):
    """The on-demand deployment's parameters for a run on the session's dataset (the library's
    clean labels are ``dataset[2]``)."""
    folder, params, _ = dataset
    return {"input": str(folder), "output_dir": str(out), "id_column": "id",
            "feature_columns": ["f0", "f1", "f2", "f3"], "affinity": "rbf",
            "landmarks": "random", **params, **extra}


def deployment(server, name="on-demand"):
    """The served deployment ``spectral-clustering/<name>``, as the REST API describes it."""
    status, dep = api(f"{server['url']}/deployments/name/spectral-clustering/{name}")
    assert status == 200, dep
    return dep


def trigger_on_demand(server, dataset, out, **extra):
    """Start an on-demand run through the REST API (``create_flow_run``) and wait for it."""
    status, run = api(f"{server['url']}/deployments/{deployment(server)['id']}/create_flow_run",
                      "POST",
                      {"parameters": run_params(dataset, out, **extra)})
    assert status == 201, run
    final = wait_for_run(server["url"], run["id"])
    assert final["state_type"] == "COMPLETED", final["state"]
    return final


class OnDemandRuns(NamedTuple):
    first: dict[str, Any]  # the run on the existing cluster
    second: dict[str, Any]  # the same run again, every stage reused
    address: str  # the existing cluster's scheduler
    executed: dict[str, int]  # tasks each of its workers had run after the first run


@pytest.fixture(scope="session")
def on_demand_runs(server, served, dataset, tmp_path_factory):
    """An on-demand run triggered through the REST API on an existing Dask cluster (a
    scheduler and two worker processes, its address in the run's ``dask`` parameter), then the
    same run again into the same output folder on the run's own local cluster (the default;
    it reuses every checkpoint): the runs whose pages, task runs, logs and artifacts the tests
    read, made once for all of them. Blocks of 500 rows: 6 parts a pass."""
    from distributed import Client

    out = tmp_path_factory.mktemp("on-demand-runs") / "out"
    address, procs = start_cluster([{}, {}], server["env"])
    try:
        first = trigger_on_demand(server, dataset, out, block_size=500,
                                  dask={"address": address})
        with Client(address) as client:
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
            send_prefect_logs(client)  # the tests read every line of the run's log
    finally:
        stop_cluster(procs)
    second = trigger_on_demand(server, dataset, out, block_size=500)
    return OnDemandRuns(first, second, address, executed)


def wait_for_run(url, run_id, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, run = api(f"{url}/flow_runs/{run_id}")
        assert status == 200, run
        if run["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(0.25)  # a run's end is seen ~0.4 s sooner on average than at 1 s
    raise AssertionError(f"flow run {run_id} still {run['state_type']} after {timeout} s")
