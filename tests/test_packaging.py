"""Installed from its wheel, the project sits beside a Prefect project of the usual layout.

The wheel is built from a copy of the sources and installed into a fresh virtual environment,
outside the checkout. A user's project there has its own ``flows/`` and ``tasks/`` packages on
``PYTHONPATH``, as a Prefect worker running that project's code has; the user's modules and
the spectral flow import in one process, the spectral flow runs as a subflow of the user's
flow, ``spectral-flow run`` runs, and the deployments register and run from the installed
package on a process work pool.

The fresh environment gets the wheel alone (``--no-deps``) and reaches the dependencies
through a ``.pth`` line naming this environment's site-packages: a ``.pth`` line adds a
folder to ``sys.path`` without running the ``.pth`` files in it, so this checkout's editable
install (a path hook started by one of those files) stays out of it. Downloading and unpacking
a second copy of Prefect, Dask and SciPy would add minutes and test nothing of ours. Prefect's
own command, which pip would have put in the environment's bin folder with Prefect, is a
two-line script there that runs ``python -m prefect``.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from .deployments.conftest import api, stop, wait_for_run
from .flows.conftest import write_dataset

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("installed-wheel")]

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from: pyproject.toml's packages and the README it names.
SOURCES = ["pyproject.toml", "README.md", "spectral_core", "flows", "tasks", "deployments"]
PARAMS = {"n_clusters": 3, "gamma": 0.1, "n_components": 50, "random_state": 0}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The project's wheel, built from a copy of its sources (the checkout stays clean)."""
    src = tmp_path_factory.mktemp("wheel-src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(dist), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (found,) = dist.glob("spectral_pipeline-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh virtual environment holding the wheel; its interpreter and bin folder."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    here = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    fresh = subprocess.run([str(python), "-c", "import sysconfig; "
                            "print(sysconfig.get_path('purelib'))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    Path(fresh, "dependencies-from-the-test-environment.pth").write_text(
        "\n".join(sorted(here)) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                              "--no-deps", "--no-index", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    prefect = venv / "bin" / "prefect"
    prefect.write_text(f'#!/bin/sh\nexec "{python}" -m prefect "$@"\n')
    prefect.chmod(0o755)
    return python, venv / "bin"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A user's Prefect project: its own ``flows`` and ``tasks`` packages and a dataset."""
    from sklearn.datasets import make_blobs

    root = tmp_path_factory.mktemp("user-project")
    for package in ("flows", "tasks"):
        (root / package).mkdir()
        (root / package / "__init__.py").write_text(f'"""The user\'s own {package}."""\n')
    (root / "tasks" / "prepare.py").write_text(textwrap.dedent('''
        """The user's task: the dataset's file list, as a pipeline's first step would."""
        from pathlib import Path

        from prefect import task


        @task
        def list_parts(folder: str) -> list[str]:
            return sorted(str(p) for p in Path(folder).glob("*.parquet"))
        '''))
    (root / "flows" / "segments.py").write_text(textwrap.dedent(f'''
        """The user's flow: its own task, then the spectral flow as a subflow."""
        import json
        import sys

        from prefect import flow

        import spectral_core
        import tasks.prepare
        from spectral_pipeline.flows import spectral
        from spectral_pipeline.flows.spectral import spectral_clustering
        from tasks.prepare import list_parts


        @flow(name="user-segments")
        def segments(data: str, out: str) -> dict:
            parts = list_parts(data)
            assert parts, data
            result = spectral_clustering(input=data, output_dir=out, id_column="id",
                                         feature_columns=["f0", "f1", "f2", "f3"],
                                         **{PARAMS!r})
            return {{"parts": len(parts), "n_clusters": len(result["cluster_sizes"])}}


        if __name__ == "__main__":
            # Where each module came from, then the run's result.
            print(json.dumps([__file__, tasks.prepare.__file__, spectral_core.__file__,
                              spectral.__file__]))
            print(json.dumps(segments(sys.argv[1], sys.argv[2])))
        '''))
    X, y = make_blobs(3000, n_features=4, centers=3, cluster_std=0.6, random_state=3)
    write_dataset(root / "data", X, y)
    return root, X


def _env(project_root, home, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PYTHONPATH=str(project_root), PREFECT_HOME=str(home),
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _clean_labels(X):
    from spectral_core import SpectralClustering

    return SpectralClustering(**PARAMS).fit(X).labels_


def test_the_wheel_installs_only_names_the_project_owns(wheel):
    names = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    top_level = {n for n in names if not n.endswith(".dist-info")}
    assert top_level == {"spectral_core", "spectral_pipeline"}
    members = set(zipfile.ZipFile(wheel).namelist())
    for module in ("spectral_pipeline/flows/cli.py", "spectral_pipeline/tasks/stages.py",
                   "spectral_pipeline/deployments/prefect.yaml"):
        assert module in members, module
    entry_points = next(n for n in members if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "spectral-flow = spectral_pipeline.flows.cli:main" in text


def test_users_flows_and_tasks_beside_the_pipeline(installed, project, prefect_server,
                                                   tmp_path):
    python, bin_dir = installed
    root, X = project
    env = _env(root, tmp_path / "home", PREFECT_API_URL=prefect_server.url)

    # One process: the user's packages, the spectral flow, the library, each from its place
    # (as the user's flow prints them); and the spectral flow as a subflow of the user's flow.
    run = subprocess.run([str(python), "-m", "flows.segments", str(root / "data"),
                          str(tmp_path / "sub")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.strip().splitlines() if line.startswith(("[", "{"))]
    users, users_tasks, core, pipeline = map(Path, json.loads(lines[-2]))
    assert users.is_relative_to(root) and users_tasks.is_relative_to(root)
    site = Path(python).parents[1]
    assert core.is_relative_to(site) and pipeline.is_relative_to(site), (core, pipeline)
    assert not core.is_relative_to(ROOT) and not pipeline.is_relative_to(ROOT)
    assert json.loads(lines[-1]) == {"parts": 3, "n_clusters": 3}
    clean = _clean_labels(X)
    np.testing.assert_array_equal(
        pq.read_table(tmp_path / "sub" / "labels").column("label").to_numpy(), clean)
    status, runs = api(f"{prefect_server.url}/flow_runs/filter", "POST",
                       {"flows": {"name": {"any_": ["spectral-clustering"]}},
                        "sort": "START_TIME_DESC", "limit": 1})
    assert status == 200 and runs[0]["parent_task_run_id"], runs  # a subflow, not a new run

    # The command, with the user's packages first on the path.
    cli = subprocess.run(
        [str(bin_dir / "spectral-flow"), "run", str(root / "data"), "--output",
         str(tmp_path / "cli"), "--id-column", "id", "--feature-columns", "f0,f1,f2,f3",
         *[f"--{k.replace('_', '-')}={v}" for k, v in PARAMS.items()]],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr[-3000:]
    np.testing.assert_array_equal(
        pq.read_table(tmp_path / "cli" / "labels").column("label").to_numpy(), clean)


def test_deployments_from_the_installed_package(installed, project, prefect_server, tmp_path):
    """The operations page's route without a checkout, as written there: `ops-work-pool`
    (a process work pool), `ops-deploy-module` (the deployments, registered by module) and
    `ops-worker` (a worker), run with the fresh environment activated, in the user's project
    folder."""
    from .docs.examples import block, run_bash, start_bash

    _, bin_dir = installed
    root, X = project
    env = _env(root, tmp_path / "home", PREFECT_API_URL=prefect_server.url,
               SPECTRAL_NIGHTLY_INPUT=root / "data", SPECTRAL_NIGHTLY_OUTPUT=tmp_path / "n",
               SPECTRAL_ON_DEMAND_INPUT=root / "data",
               SPECTRAL_ON_DEMAND_OUTPUT=tmp_path / "on-demand")
    for name in ("ops-work-pool", "ops-deploy-module"):
        done = run_bash(block(name), cwd=root, env=env, bin_dir=bin_dir)
        assert done.returncode == 0, (name, done.stdout[-3000:] + done.stderr[-3000:])
    status, deployments = api(f"{prefect_server.url}/deployments/filter", "POST",
                              {"work_pools": {"name": {"any_": ["spectral-pool"]}}})
    assert status == 200 and {d["name"] for d in deployments} == {"nightly", "on-demand"}
    on_demand = next(d for d in deployments if d["name"] == "on-demand")
    assert {d["entrypoint"] for d in deployments} == {
        "spectral_pipeline.flows.spectral.spectral_clustering"}
    nightly = next(d for d in deployments if d["name"] == "nightly")
    # SPECTRAL_NIGHTLY_CRON is optional for the module: 02:00 UTC by default.
    assert nightly["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    # Nothing to run on a schedule during the test: the nightly is paused.
    status, _ = api(f"{prefect_server.url}/deployments/{nightly['id']}/pause_deployment",
                    "POST")
    assert status in (200, 204), status
    status, run = api(f"{prefect_server.url}/deployments/{on_demand['id']}/create_flow_run",
                      "POST", {"parameters": {
                          "output_dir": str(tmp_path / "pool"), "id_column": "id",
                          "feature_columns": ["f0", "f1", "f2", "f3"], "affinity": "rbf",
                          "landmarks": "random", **PARAMS}})
    assert status == 201, run
    log = open(tmp_path / "worker.log", "w")
    worker = start_bash(block("ops-worker"), cwd=root, env=env, log=log, bin_dir=bin_dir)
    try:
        final = wait_for_run(prefect_server.url, run["id"], timeout=300)
        assert final["state_type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        stop(worker)
        log.close()
    np.testing.assert_array_equal(
        pq.read_table(tmp_path / "pool" / "labels").column("label").to_numpy(),
        _clean_labels(X))
