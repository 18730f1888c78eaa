"""The Prefect server on a real PostgreSQL (PREFECT_API_DATABASE_CONNECTION_URL).

The session's server (tests/deployments/conftest.py) starts with the operations page's
`ops-postgres` setting, and every deployment test runs its flows on it; this test checks that
what the server records is kept in PostgreSQL.
"""

import subprocess

import pytest

from .conftest import ON_THE_SERVER, api, deployment

pytestmark = [pytest.mark.slow, ON_THE_SERVER]


def _psql(postgres, query):
    done = subprocess.run([*postgres["psql"], query], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def test_the_server_keeps_its_deployments_and_runs_in_postgresql(server, served, postgres,
                                                                 dataset, tmp_path):
    assert server["setting"].strip() == \
        f"export PREFECT_API_DATABASE_CONNECTION_URL={postgres['url']}"
    dep = deployment(server)
    assert _psql(postgres, f"select name from deployment where id = '{dep['id']}'") == \
        "on-demand"
    # A run scheduled far ahead: recorded, and left alone by the runner.
    folder, params, _ = dataset
    status, run = api(f"{server['url']}/deployments/{dep['id']}/create_flow_run", "POST", {
        "parameters": {"input": str(folder), "output_dir": str(tmp_path / "out"), **params},
        "state": {"type": "SCHEDULED",
                  "state_details": {"scheduled_time": "2100-01-01T00:00:00Z"}}})
    assert status == 201, run
    try:
        assert _psql(postgres, f"select count(*) from flow_run where id = '{run['id']}'") == "1"
    finally:
        api(f"{server['url']}/flow_runs/{run['id']}", "DELETE")
    assert _psql(postgres, f"select count(*) from flow_run where id = '{run['id']}'") == "0"
    assert not list(server["home"].rglob("*.db"))  # no SQLite file beside it
