"""A local Prefect server for the length of one command (worker processes share it)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the process that started it dies.

    Linux's PR_SET_PDEATHSIG, so a SIGKILLed command (the OOM killer, a batch scheduler) does
    not leave its server behind; elsewhere a no-op. If the parent is already gone when the
    child gets here, the child exits at once.
    """
    parent = os.getpid()

    def arm() -> None:
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:
            os._exit(1)

    return arm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Prefect server services that have nothing to do on a server that lives for one command.
IDLE_SERVICES = ("TRIGGERS", "FOREMAN", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP",
                 "REPOSSESSOR", "CLEANUP_RECONCILER")


class LocalServer:
    """``prefect server start`` on 127.0.0.1 and a free port; PREFECT_API_URL points to it.

    Like Prefect's own temporary server it runs without the UI, the scheduler and the late-runs
    service (a server that lives for one command must not pick up other deployments'
    schedules), and without the services that have nothing to act on there
    (:data:`IDLE_SERVICES`), but it is started by us so that it can boot while this process
    is still importing (:meth:`launch` now, :meth:`wait` later): that overlap saves most of the
    ~7 s a server takes to start here (measured in benchmarks/profile.md). It gets SIGTERM
    when this process dies, even by SIGKILL (:func:`die_with_parent`), so it never outlives
    the command.
    """

    def __init__(self, port: int | None = None, timeout: float = 120.0):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self._stack = ExitStack()
        self._old_env: str | None = None
        self.ready = False

    def launch(self) -> LocalServer:
        """Start the server process and return at once."""
        prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
        self.log = tempfile.NamedTemporaryFile(prefix="prefect-server-", suffix=".log",
                                               delete=False)
        # Nor does it register block types: that imports every installed Prefect collection
        # (prefect-dask, and with it Dask) to hash their blocks, 0.6 s of a 5 s start here; a
        # server with the UI registers them when it starts on the same database. Nor does it
        # run the services that act on what a lasting server holds (automations, workers and
        # work pools, pauses, cancellations, concurrency leases, cleanup leases): a server of
        # one command holds none of them (~1.2 of its ~5.5 CPU-seconds of start-up here).
        env = {"PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
               "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
               **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
                  for name in IDLE_SERVICES},
               **os.environ}
        self.proc = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-ui", "--no-scheduler", "--no-late-runs"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent(),
        )
        return self

    def wait(self) -> LocalServer:
        """Block until the API answers, then point this process (and its children) at it."""
        assert self.proc is not None, "launch() first"
        if self.ready:
            return self
        deadline = time.monotonic() + self.timeout
        relaunches = 2
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if relaunches and "already in use" in self._log_tail():
                    # The free port was taken before the server bound it (by another process,
                    # or an outgoing connection's ephemeral port): try another.
                    relaunches -= 1
                    self.port = free_port()
                    self.url = f"http://127.0.0.1:{self.port}/api"
                    self.launch()
                    continue
                raise RuntimeError(f"prefect server exited early; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"prefect server did not start in {self.timeout:.0f} s; see "
                               f"{self.log.name}")
        self._old_env = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = self.url  # inherited by worker processes
        from prefect.settings import PREFECT_API_URL, temporary_settings

        self._stack.enter_context(temporary_settings(updates={PREFECT_API_URL: self.url}))
        self.ready = True
        return self

    def _log_tail(self) -> str:
        try:
            with open(self.log.name, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4000))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def start(self) -> LocalServer:
        return self.launch().wait()

    def stop(self) -> None:
        self.ready = False
        self._stack.close()
        if self._old_env is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = self._old_env
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
