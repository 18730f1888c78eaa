"""A real Dask cluster for tests: a scheduler and workers as separate processes on 127.0.0.1."""

import os
import subprocess
import sys
import time
from pathlib import Path

from flows.server import free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def start_cluster(worker_envs, env=None, nthreads=1):
    """A scheduler and one worker per env; returns (address, processes).

    Workers get the repository root on ``PYTHONPATH``, so functions defined in test modules
    can run on them.
    """
    from distributed import Client

    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for extra in worker_envs:
        procs.append(subprocess.Popen(
            # --no-nanny: a SIGKILLed worker stays dead (a nanny would restart it).
            [str(BIN / "dask"), "worker", address, "--nthreads", str(nthreads),
             "--no-dashboard", "--no-nanny", "--host", "127.0.0.1"], env={**env, **extra},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    with Client(address, timeout=60) as client:
        client.wait_for_workers(len(worker_envs), timeout=60)
    return address, procs


def stop_cluster(procs):
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
    time.sleep(0.1)
