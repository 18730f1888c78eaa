"""Running the flow from a terminal: a local Prefect server for the command's length (unless
one is configured), a progress line per stage, and the summary it prints.

Prefect's console shows WARNING and up, without the tracebacks of the errors the command
reports itself (a refusal, a store that stopped answering, Ctrl-C); ``--verbose`` shows all.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: Quiet, offline-friendly defaults for the embedded mode (a user's own settings win).
_ENV_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DASK_DISTRIBUTED__WORKER__DAEMON": "false",
}


def environment() -> None:
    """Set the embedded mode's quiet defaults, unless the user set them."""
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


class _TerminalProgress(logging.Handler):
    """One updating line per stage, fed by the flow's progress log records."""

    def __init__(self, stream):
        super().__init__(logging.INFO)
        self.stream = stream
        self.tty = stream.isatty()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if " parts" not in msg and not ("Finished in state Completed" in msg
                                        or "Finished in state Cached" in msg):
            return  # a failure is the command's own one line
        line = msg if " parts" in msg else f"{getattr(record, 'task_run_name', '')} {msg}"
        if self.tty:
            self.stream.write("\r\033[K" + line[:120])
            if "Finished" in msg:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


_SERVER = None
_FREEZING = False


def _freeze_at_exit() -> None:
    """Freeze every object just before the interpreter tears itself down.

    Finalization runs full collections over everything the modules made (~1.3 s after a run
    here, benchmarks/profile.md); frozen objects are skipped and the process simply ends.
    Registered before Prefect, Dask and the local server register theirs, so it runs after
    them (atexit runs the last-registered first).
    """
    global _FREEZING
    if not _FREEZING:
        atexit.register(gc.freeze)
        _FREEZING = True


def launch_local_server():
    """Start booting a local Prefect server now unless ``PREFECT_API_URL`` is set.

    It boots (~7 s here) while this process imports Prefect, Dask and scikit-learn; waiting
    for it only when the flow is about to start overlaps the two (benchmarks/profile.md). It is
    stopped at exit, after Prefect has drained its log and event queues into it (atexit runs
    the last-registered first, and Prefect registers its drains when they start).
    """
    global _SERVER
    if _SERVER is None and not os.environ.get("PREFECT_API_URL"):
        from .server import LocalServer

        _SERVER = LocalServer().launch()
        atexit.register(_stop_local_server)
    return _SERVER


def _stop_local_server() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


def reported_by_the_command(exc: BaseException | None) -> bool:
    """The errors the command reports in one line itself: a refused input or parameter
    (status 2), a store that stopped answering (status 1), Ctrl-C (status 130). Prefect's
    console shows no traceback for these unless --verbose; its API log (and UI) keeps them."""
    from spectral_pipeline.tasks.errors import StoreUnavailable, is_refusal

    return exc is not None and (is_refusal(exc)
                                or isinstance(exc, StoreUnavailable | KeyboardInterrupt))


class _ExpectedErrors(logging.Filter):
    """Drops Prefect's console records of an expected error or of Ctrl-C, and its "Finished
    in state Failed" lines: the command reports how a run ended (one line for an expected
    error, the traceback of any other). Also Dask's own record of a failed part ("Compute
    Failed", with its traceback as text) and of the parts cancelled after it: the part's
    error is the task's, which the command reports."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if reported_by_the_command(exc):
            return False
        if record.name.startswith("distributed.worker") and (
                str(record.msg).startswith("Compute Failed")
                or "ended with CancelledError" in record.getMessage()):
            return False
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        # Ctrl-C's "Crash detected! Execution was aborted by an interrupt signal." (or "...
        # interrupted by an unexpected exception: KeyboardInterrupt") carries no exc_info.
        return not (message.startswith("Finished in state") or "KeyboardInterrupt" in message
                    or "interrupt signal" in message)


def _warm_up(params) -> None:
    """On a thread: import (and set up) what this process needs later in the run.

    With the default cluster (Dask threads in this process) the tasks load scikit-learn for
    the label assignment and matplotlib for the report, and Prefect loads FastAPI's encoder to
    create the flow run. Loaded here, they load while the local server finishes booting (the
    process would otherwise sit idle; benchmarks/profile.md). Not with a running server (no
    wait to fill: measured no faster) nor for a cluster elsewhere (its workers draw).
    """
    if not params.dask.in_this_process:
        return

    def warm() -> None:
        try:
            import fastapi.encoders  # noqa: F401

            from spectral_core import blocks
            from spectral_pipeline.tasks import report

            blocks.make_assigner  # noqa: B018 (loads scikit-learn's KMeans)
            report.warm_up()
        except Exception:  # only a head start: the run imports these itself
            logging.getLogger(__name__).debug("warm-up failed", exc_info=True)

    threading.Thread(target=warm, name="spectral-warm-up", daemon=True).start()


@contextlib.contextmanager
def _no_heartbeats(own_server: bool) -> Iterator[None]:
    """Without flow-run heartbeats while ``own_server``: the command's own server.

    Prefect sends a heartbeat every 180 s so that a server can mark a run whose process died
    as crashed; the command's server dies with the command, so nobody would read them. And
    Prefect's heartbeat thread sleeps in steps of one second that the end of the run waits
    out: 0.5-1 s at the end of every run (a refused input's run took 1.16 s with them, 0.18 s
    without; measured on Prefect 3.9). A configured server (``PREFECT_API_URL``) keeps them.
    """
    if not own_server:
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def run_flow(params, *, quiet: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Run the flow in this process (starting a local Prefect server if none is configured).

    Prefect's console log is shown from WARNING up, without the tracebacks of the errors the
    caller reports (:func:`reported_by_the_command`); on a terminal, one progress line per
    stage. ``verbose``: Prefect's full console log, tracebacks included.
    """
    environment()
    if not verbose:  # also for Dask worker processes, which configure their own logging
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    else:  # Dask's own INFO lines too (flows/runner.py)
        from .runner import VERBOSE

        os.environ[VERBOSE] = "1"
    _freeze_at_exit()
    gc.disable()  # the imports below allocate ~300,000 objects and free almost none
    try:
        server = launch_local_server()
        from prefect.settings import get_current_settings

        if server is not None and get_current_settings().api.url not in (None, "",
                                                                         server.url):
            # An API configured in a Prefect profile (not the environment): use that one.
            _stop_local_server()
            server = None
        from .spectral import run_spectral
    finally:
        # What the imports made lives as long as the process: out of the collector's sight,
        # full collections during the run only walk what the run allocates.
        gc.freeze()
        gc.enable()
    if server is not None:
        _warm_up(params)
        server.wait()
    from prefect.logging.handlers import PrefectConsoleHandler

    consoles: list[logging.Handler] = []
    for lg in (logging.getLogger(), logging.getLogger("prefect")):
        consoles += [h for h in lg.handlers if isinstance(h, PrefectConsoleHandler)
                     and h not in consoles]
    levels = [h.level for h in consoles]
    quieter = _ExpectedErrors()
    handler = None
    if not verbose:
        for h in consoles:
            h.setLevel(max(h.level, logging.WARNING))
            h.addFilter(quieter)
    if not quiet and not verbose and sys.stderr.isatty():
        handler = _TerminalProgress(sys.stderr)
        logging.getLogger("prefect").addHandler(handler)
    try:
        with _no_heartbeats(server is not None):
            return run_spectral(params)
    finally:
        gc.unfreeze()  # a caller that runs on (tests, a notebook) collects as before
        if handler:
            logging.getLogger("prefect").removeHandler(handler)
        for h, level in zip(consoles, levels, strict=True):
            h.setLevel(level)
            h.removeFilter(quieter)


def print_summary(result: dict[str, Any], seconds: float, out=sys.stdout) -> None:
    """The run's outcome on the terminal: outputs, clusters, eigenvalues, every stage's
    time and what it reused."""
    files = result["files"]
    print("", file=out)
    print(f"spectral-clustering: {result['rows']:,} rows in {seconds:.1f} s", file=out)
    for name, path in files.items():
        print(f"  {name:<10} {path}", file=out)
    sizes = result["cluster_sizes"]
    total = max(sum(sizes), 1)
    print("  clusters   " + ", ".join(f"{i}: {n:,} ({100 * n / total:.0f}%)"
                                      for i, n in enumerate(sizes)), file=out)
    print("  eigenvalues " + " ".join(f"{v:.4f}" for v in result["eigenvalues"]), file=out)
    suggestion = result.get("n_clusters_suggestion")
    if suggestion:
        print(f"  suggested  {suggestion['text']}; see the report", file=out)
    print("  stage              seconds", file=out)
    from spectral_pipeline.tasks.summary import all_stages

    for stage, info in all_stages(result).items():
        print(f"  {stage:<18} {info['seconds']:7.2f}{_reuse_note(info)}", file=out)


def _reuse_note(info: dict[str, Any]) -> str:
    """"(Cached: reused from checkpoint)", or how many of its parts a resumed stage reused."""
    if info["reused"]:
        return f"  ({info['state']}: reused from checkpoint)"
    parts, computed = info.get("parts"), info.get("parts_computed")
    if parts and computed is not None and computed < parts:
        return f"  ({parts - computed}/{parts} parts reused)"
    return ""
