"""What a `spectral-flow run` leaves on the machine: sockets on 127.0.0.1 only while it runs,
and no process once it is SIGKILLed (as the OOM killer or a batch scheduler would)."""

import os
import signal
import subprocess
import time

import psutil
import pytest

from .helpers import BIN, cli_env, run_args


def _cmdline(proc):
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _listening(procs):
    found = []
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        found += [(proc.pid, c.laddr.ip, c.laddr.port) for c in conns
                  if c.status == psutil.CONN_LISTEN]
    return found


def _gone(proc):
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_run_listens_on_loopback_only_and_a_sigkill_leaves_nothing(blobs_data, tmp_path):
    data, _, _ = blobs_data
    # The command starts its own Prefect server and Dask cluster, here of worker processes:
    # the scheduler and its dashboard listen in the command's process, each worker in its
    # own. (The default cluster, threads in the command's process, is the next test's.)
    # Small blocks make the run last long enough to look at.
    n_workers = 2
    cluster = ["--dask-processes", "--dask-n-workers", str(n_workers),
               "--dask-threads-per-worker", "1"]
    cli = subprocess.Popen(
        [str(BIN / "spectral-flow"), *run_args(data, tmp_path / "out", *cluster, block_size=10)],
        env=cli_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    root = psutil.Process(cli.pid)
    server, workers = [], []
    try:
        deadline = time.monotonic() + 180
        while True:
            assert cli.poll() is None, cli.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the Dask workers never started"
            tree = [root, *root.children(recursive=True)]
            server = [p for p in tree if "server start" in _cmdline(p)]
            workers = [p for p in tree if "spawn_main" in _cmdline(p)]
            listening = _listening(tree)
            worker_pids = {p.pid for p in workers}
            pids = {pid for pid, _, _ in listening}
            # Up: the server listens, the command listens (dashboard, and the scheduler when
            # workers are processes) and so does every worker process.
            if (server and len(workers) == n_workers and server[0].pid in pids
                    and cli.pid in pids and pids >= worker_pids):
                break
            time.sleep(0.2)
        # The Prefect server, the scheduler, its dashboard, each worker: all on loopback.
        assert listening and all(ip in ("127.0.0.1", "::1") for _, ip, _ in listening), listening
        assert not [port for _, _, port in listening if port == 8787], listening

        cli.send_signal(signal.SIGKILL)
        cli.wait()
        left = [server[0], *workers]
        deadline = time.monotonic() + 30
        while not all(_gone(p) for p in left) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_gone(p) for p in left), [(p.pid, _cmdline(p)) for p in left if not _gone(p)]
    finally:  # whatever the outcome, nothing of this run survives the test
        try:
            os.killpg(cli.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for proc in [*server, *workers]:
            try:
                proc.kill()
            except psutil.Error:
                pass


def test_the_default_cluster_of_threads_listens_on_loopback_only():
    """The default cluster (threads in the run's process: the scheduler talks in-process)
    opens one listening socket, its dashboard: on 127.0.0.1 and not on Dask's fixed 8787.
    Started here with the settings the flow's runner gives it; what the command adds around
    it (its server, and that a SIGKILL takes both down) is the test above."""
    import distributed

    from spectral_pipeline.flows.params import DaskOptions
    from spectral_pipeline.flows.runner import cluster_settings

    options = DaskOptions()
    assert options.in_this_process
    settings = cluster_settings(options)
    assert settings["cluster_class"] == "distributed.LocalCluster"
    me = psutil.Process()
    before = set(_listening([me]))
    with distributed.LocalCluster(**settings["cluster_kwargs"]) as cluster, \
            distributed.Client(cluster) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        opened = set(_listening([me])) - before
    assert opened, "the dashboard listens"
    assert all(ip in ("127.0.0.1", "::1") for _, ip, _ in opened), opened
    assert 8787 not in {port for _, _, port in opened}, opened


@pytest.mark.slow
def test_the_commands_server_moves_to_another_port_if_its_port_is_taken(tmp_path, monkeypatch):
    """The free port the command picked can be taken before its server binds it (another
    process, an outgoing connection): the server is started again on another one."""
    import socket
    import urllib.request

    from spectral_pipeline.flows.server import LocalServer

    from .. import conftest

    # As the command would start it: in a PREFECT_HOME of its own, no API configured.
    monkeypatch.setenv("PREFECT_HOME", str(conftest.migrated_prefect_home(tmp_path / "home")))
    monkeypatch.delenv("PREFECT_API_URL")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = LocalServer(port=port).launch()
        try:
            server.wait()
            with urllib.request.urlopen(server.url + "/health", timeout=10) as answer:
                assert answer.status == 200
        finally:
            server.stop()
    assert server.port != port


@pytest.mark.slow
def test_the_commands_server_runs_none_of_the_services_a_lasting_server_needs(prefect_server):
    """The command's server (this worker's is one, started the same way) runs without the
    services that act on automations, workers, pauses, cancellations and leases, and still
    records runs (every flow test of this worker runs against it)."""
    from spectral_pipeline.flows.server import IDLE_SERVICES

    from .. import conftest

    server = psutil.Process(conftest._SERVER.proc.pid)
    tree = [server, *server.children(recursive=True)]
    python = next(p for p in tree if "server start" in _cmdline(p))
    env = python.environ()
    assert IDLE_SERVICES and all(env[f"PREFECT_SERVER_SERVICES_{name}_ENABLED"] == "false"
                                 for name in IDLE_SERVICES), env
    assert "--no-scheduler" in python.cmdline() and "--no-ui" in python.cmdline()
