"""A real Dask cluster for tests: a scheduler and workers as separate processes on 127.0.0.1."""

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from spectral_pipeline.flows.server import free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def private(command, directories):
    """``command`` in its own mount and PID namespaces, with an empty tmpfs over each of
    ``directories``: a process that shares no disk with this one (root, util-linux unshare).
    Killing it kills everything in its namespace."""
    steps = [f"mkdir -p {shlex.quote(str(d))} && mount -t tmpfs -o mode=1777 tmpfs "
             f"{shlex.quote(str(d))}" for d in directories]
    script = " && ".join([*steps, "exec " + " ".join(shlex.quote(str(a)) for a in command)])
    return ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
            "--kill-child", "--mount-proc", "--", "sh", "-c", script]


def start_cluster(worker_envs, env=None, nthreads=1, private_dirs=()):
    """A scheduler and one worker per env; returns (address, processes).

    Workers get the repository root on ``PYTHONPATH``, so functions defined in test modules
    can run on them. With ``private_dirs``, each worker sees its own empty tmpfs there.
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
        # --no-nanny: a SIGKILLed worker stays dead (a nanny would restart it).
        command = [str(BIN / "dask"), "worker", address, "--nthreads", str(nthreads),
                   "--no-dashboard", "--no-nanny", "--host", "127.0.0.1"]
        if private_dirs:
            command = private([*command, "--local-directory", str(private_dirs[0])],
                              private_dirs)
        procs.append(subprocess.Popen(command, env={**env, **extra}, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    with Client(address, timeout=60) as client:
        client.wait_for_workers(len(worker_envs), timeout=60)
    return address, procs


def send_prefect_logs(client):
    """Have every worker send the log lines Prefect still holds for the API before
    :func:`stop_cluster`: Prefect sends them in batches (one every
    ``PREFECT_LOGGING_TO_API_BATCH_INTERVAL``, 2 s), and a SIGKILL drops the batch not yet
    sent, so a run's last lines never reach the server (seen in CI: assign_labels' last two)."""
    client.run(_drain_prefect_logs)


def _drain_prefect_logs():
    import threading

    from prefect.logging.handlers import APILogWorker

    # A thread of its own: client.run calls this on the worker's event loop, where drain_all
    # would hand back a coroutine instead of waiting for the sends.
    drain = threading.Thread(target=APILogWorker.drain_all,
                             kwargs={"timeout": 30, "at_exit": False})
    drain.start()
    drain.join()


def stop_cluster(procs):
    """Kill the cluster's processes (SIGKILL; a worker in its own namespace with everything
    in it). A throw-away cluster has nothing to shut down cleanly, and SIGTERM cost ~20 s
    a cluster: a worker whose scheduler is stopping at the same time waits out its timeout
    (test_cluster's fixture took 21-23 s to tear down)."""
    for p in reversed(procs):
        try:
            if p.args[0] == "unshare":  # its namespace dies with it
                os.killpg(p.pid, signal.SIGKILL)
            else:
                p.kill()
        except ProcessLookupError:
            pass
    for p in procs:
        p.wait(timeout=20)
