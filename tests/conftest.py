"""Shared fixtures. Data sets are made here or loaded from scikit-learn (no downloads).

The tests run in two pytest-xdist worker processes. Each worker has its own ``PREFECT_HOME``
(set before Prefect is imported) and, when it collected a test that needs a Prefect API, its
own local ``prefect server start`` (the one `spectral-flow` itself starts): launched as soon
as collection ends, so it boots while the first tests run, and awaited by the first test that
needs it (``prefect_server``).
"""

import os
import shutil
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

_SERVER = None  # this process's LocalServer, once launched


def _is_xdist_controller(config) -> bool:
    """True in the process that only hands tests to workers (it runs none)."""
    return not hasattr(config, "workerinput") and bool(
        getattr(config.option, "numprocesses", None))


def pytest_configure(config):
    if _is_xdist_controller(config):
        return
    assert "prefect" not in sys.modules, "PREFECT_HOME must be set before Prefect is imported"
    home = tempfile.mkdtemp(prefix="spectral-tests-prefect-home-")
    config._spectral_prefect_home = home
    os.environ["PREFECT_HOME"] = home
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.pop("PREFECT_API_URL", None)


#: Fixtures that start something slow, and what: every test that uses one, directly or
#: through another fixture (an autouse one too), is marked ``slow`` at collection
#: (:func:`pytest_collection_modifyitems`), so ``-m "not slow"`` starts none of them. Tests
#: that start such things themselves (a subprocess flow, a wheel build) carry the mark in
#: their module.
SLOW_FIXTURES = {
    "prefect_server": "a Prefect server (every test under tests/flows/ uses it)",
    "server": "the deployments' Prefect server, with its UI, on PostgreSQL",
    "served": "the served deployments (a `python -m ...serve` process)",
    "postgres": "a PostgreSQL cluster",
    "s3": "a SeaweedFS S3 server",
    "cluster": "a Dask scheduler and worker processes",
    "dask_cluster": "a Dask scheduler and worker processes",
    "site": "the documentation site's Sphinx build",
}


@pytest.hookimpl(tryfirst=True)  # before -m selects: the marks must be there by then
def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    # The slow tests first, in their order (a group's tests stay together), the quick ones
    # after them: pytest-xdist hands out work in this order, so the last work handed out is
    # short and both workers finish together. In collection order, one worker ran the last
    # ~200 quick tests while the other still had the resumption and store-outage tests
    # queued, and then ran them alone for ~40 s.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_collection_finish(session):
    global _SERVER
    if _is_xdist_controller(session.config) or session.config.option.collectonly:
        return
    if any("prefect_server" in getattr(item, "fixturenames", ()) for item in session.items):
        from spectral_pipeline.flows.server import LocalServer

        _SERVER = LocalServer(timeout=240).launch()


def pytest_unconfigure(config):
    global _SERVER
    from .browser import close_session

    close_session()  # this process's Chromium, if a test started it
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None
    home = getattr(config, "_spectral_prefect_home", None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """This worker's local Prefect server; PREFECT_API_URL points at it from now on (in this
    process and the processes it starts).

    Also keeps a copy of its freshly migrated database (``PREFECT_HOME_TEMPLATE``): a command
    that starts its own server in a new PREFECT_HOME spends ~14 of its ~22 CPU-seconds of
    start-up creating and migrating that database, so tests copy this one in instead
    (``tests/flows/helpers.cli_env``); the README's demo test keeps a truly fresh home.
    """
    global PREFECT_HOME_TEMPLATE
    from spectral_pipeline.flows.running import _no_heartbeats

    assert _SERVER is not None, "launched at the end of collection for tests that use it"
    server = _SERVER.wait()
    PREFECT_HOME_TEMPLATE = tmp_path_factory.mktemp("prefect-home-template")
    _copy_home(Path(os.environ["PREFECT_HOME"]), PREFECT_HOME_TEMPLATE)
    # The flows run in this process send no heartbeats, as `spectral-flow run` on its own
    # server sends none (the same switch): Prefect's heartbeat thread holds the end of every
    # run up to a second. The commands and deployments these tests start keep the default.
    with _no_heartbeats(own_server=True):
        yield server


#: A PREFECT_HOME with a migrated, empty database, once ``prefect_server`` has started.
PREFECT_HOME_TEMPLATE: Path | None = None


def migrated_prefect_home(path) -> Path:
    """``path`` as a PREFECT_HOME holding a copy of the template's migrated database."""
    assert PREFECT_HOME_TEMPLATE is not None, "needs the prefect_server fixture first"
    shutil.copytree(PREFECT_HOME_TEMPLATE, path, dirs_exist_ok=True)
    return Path(path)


def _copy_home(source: Path, target: Path) -> None:
    """The Prefect database (a consistent copy, while its server runs) and the block
    registration memo of one PREFECT_HOME into another."""
    import sqlite3

    target.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source / "prefect.db")) as src, \
            closing(sqlite3.connect(target / "prefect.db")) as dst:
        src.backup(dst)
    if (source / "memo_store.toml").exists():
        shutil.copy2(source / "memo_store.toml", target / "memo_store.toml")


@pytest.fixture(scope="session")
def three_blobs():
    """Three well-separated Gaussian blobs with known labels, (600, 4)."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(600, n_features=4, centers=3, cluster_std=0.6, random_state=3)
    return X, y


@pytest.fixture(scope="session")
def small_groups():
    """120 points in three groups, small enough for a dense n×n reference."""
    rng = np.random.RandomState(0)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    X = np.vstack([rng.randn(40, 3) + c for c in centres])
    return X
