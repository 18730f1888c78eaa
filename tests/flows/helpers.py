"""Subprocess helpers for tests that run the CLI or a Dask cluster as separate processes."""

import os
import signal
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def cli_env(tmp_path, *, fresh_home=False, **extra):
    """Environment for a `spectral-flow` subprocess, with its own PREFECT_HOME.

    Without PREFECT_API_URL the command starts its own server in that home: it gets a copy of
    an already migrated database (tests/conftest.py), unless ``fresh_home``.
    """
    from .. import conftest

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    if not fresh_home and "PREFECT_API_URL" not in extra:
        conftest.migrated_prefect_home(env["PREFECT_HOME"])
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(args, env, timeout=300):
    """Run `spectral-flow ARGS` in its own process group; clean up anything it leaves."""
    proc = subprocess.Popen([str(BIN / "spectral-flow"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        try:  # a SIGKILLed run leaves its temporary API server behind: end the group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode, out, err


def current_api_url():
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


#: The flags of a run over ``blobs_data`` (tests/flows/conftest.py), written once for every
#: test of the command: a test overrides one by keyword and adds its own switches.
BLOBS_FLAGS = {"n_clusters": 3, "gamma": 0.1, "n_components": 50, "random_state": 0,
               "feature_columns": "f0,f1,f2,f3", "id_column": "id", "block_size": 1000}


def run_args(data, out, *switches, **flags) -> list[str]:
    """``run DATA --output OUT`` with the blobs run's flags, ``flags`` overriding them (a
    value of None leaves the flag out), then ``switches`` (``"--dask-processes"``, ...)."""
    args = ["run", str(data), "--output", str(out)]
    for name, value in {**BLOBS_FLAGS, **flags}.items():
        if value is not None:
            args += ["--" + name.replace("_", "-"), str(value)]
    return [*args, *switches]
