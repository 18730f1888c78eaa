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


def pytest_collection_finish(session):
    global _SERVER
    if _is_xdist_controller(session.config) or session.config.option.collectonly:
        return
    if any("prefect_server" in getattr(item, "fixturenames", ()) for item in session.items):
        from flows.server import LocalServer

        _SERVER = LocalServer(timeout=240).launch()


def pytest_unconfigure(config):
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None
    home = getattr(config, "_spectral_prefect_home", None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server():
    """This worker's local Prefect server; PREFECT_API_URL points at it from now on (in this
    process and the processes it starts)."""
    assert _SERVER is not None, "launched at the end of collection for tests that use it"
    return _SERVER.wait()


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
