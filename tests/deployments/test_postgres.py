"""The Prefect server on a real PostgreSQL (PREFECT_API_DATABASE_CONNECTION_URL)."""

import glob
import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from spectral_pipeline.flows.server import free_port

from ..docs.examples import block, start_bash, with_ports
from ..system import apt_install
from .conftest import api, base_env, start_server, stop, wait_for_run, wait_healthy

pytestmark = pytest.mark.slow


def _pg_bin() -> str:
    def initdb():
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        return found[-1] if found else None

    found = apt_install("postgresql", initdb)
    if not found:
        pytest.fail("PostgreSQL is not installed (Debian: apt-get install postgresql); this "
                    "test needs a real server.")
    return os.path.dirname(found)


@pytest.fixture
def postgres():
    """A throw-away PostgreSQL cluster on 127.0.0.1 and a free port, run as 'postgres'.

    Its directory is a fresh one under /tmp: pytest's tmp_path lives in a root-only folder
    that the postgres user (PostgreSQL refuses to run as root) cannot enter.
    """
    import tempfile
    from pathlib import Path

    pg = _pg_bin()
    tmp_path = Path(tempfile.mkdtemp(prefix="spectral-pg-"))
    data = tmp_path / "pgdata"
    data.mkdir()
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(tmp_path, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run([*as_user, f"{pg}/initdb", "-D", str(data), "-U", "prefect", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, f"{pg}/pg_ctl", "-D", str(data), "-l", str(tmp_path / "pg.log"),
                    "-o", f"-p {port} -k {tmp_path} -h 127.0.0.1", "-w", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run([*as_user, f"{pg}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U",
                        "prefect", "prefect"], check=True, capture_output=True)
        yield {"url": f"postgresql+asyncpg://prefect@127.0.0.1:{port}/prefect",
               "psql": [f"{pg}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "prefect",
                        "-d", "prefect", "-tAc"]}
    finally:
        subprocess.run([*as_user, f"{pg}/pg_ctl", "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_server_on_postgresql_runs_a_deployment(postgres, dataset, tmp_path):
    """The operations page's PostgreSQL example (`ops-postgres`), then its server
    (`ops-server-start`) in the same shell and its `ops-serve`, as written but on this
    test's ports."""
    pg_port = int(postgres["url"].rsplit(":", 1)[1].split("/")[0])
    setting = with_ports(block("ops-postgres"), {5432: pg_port})
    assert setting.strip() == f"export PREFECT_API_DATABASE_CONNECTION_URL={postgres['url']}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = base_env(tmp_path / "home")
    server = start_server(port, env, tmp_path, tmp_path / "server.log", before=setting)
    served = None
    try:
        wait_healthy(url, server, tmp_path / "server.log")
        served = start_bash(block("ops-serve"), cwd=tmp_path,
                            env={**env, "PREFECT_API_URL": url,
                                 "PREFECT_RUNNER_POLL_FREQUENCY": "2"},
                            log=open(tmp_path / "serve.log", "w"))
        deadline = time.monotonic() + 120
        while api(url + "/deployments/name/spectral-clustering/on-demand")[0] != 200:
            assert time.monotonic() < deadline and served.poll() is None
            time.sleep(1)
        dep = api(url + "/deployments/name/spectral-clustering/on-demand")[1]["id"]
        folder, params, clean = dataset
        status, run = api(f"{url}/deployments/{dep}/create_flow_run", "POST", {"parameters": {
            "input": str(folder), "output_dir": str(tmp_path / "out"), "id_column": "id",
            "feature_columns": ["f0", "f1", "f2", "f3"], "affinity": "rbf",
            "landmarks": "random", **params}})
        assert status == 201, run
        assert wait_for_run(url, run["id"])["state_type"] == "COMPLETED", \
            (tmp_path / "serve.log").read_text()[-3000:]
        import pyarrow.parquet as pq

        labels = pq.read_table(tmp_path / "out" / "labels").column("label").to_numpy()
        np.testing.assert_array_equal(labels, clean)
        # The run is recorded in PostgreSQL, not in a SQLite file.
        count = subprocess.run([*postgres["psql"], "select count(*) from flow_run where id = "
                                f"'{run['id']}'"], capture_output=True, text=True, check=True)
        assert count.stdout.strip() == "1"
        assert not list((tmp_path / "home").glob("*.db"))
    finally:
        if served is not None:
            stop(served)
        stop(server)
