"""The flow's task runner: prefect-dask's ``DaskTaskRunner``, configured by the run.

Which Dask cluster runs a flow run's tasks is one of its parameters (``dask``). Prefect fixes a
flow's task runner when the flow is defined, so the runner here reads the run's parameters
when its client is first needed: one flow run, one run page, whatever the cluster.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from prefect.context import FlowRunContext
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

from .params import DaskOptions

#: Set (to anything) to keep Dask's INFO lines in a run's output; ``spectral-flow --verbose``
#: and ``serve --verbose`` set it, and a serve process's flow runs inherit it.
VERBOSE = "SPECTRAL_PIPELINE_VERBOSE"


def quiet_dask_logs() -> Callable[[], None] | None:
    """Raise Dask's loggers to WARNING for a run's cluster, unless asked for more.

    distributed logs at INFO by default: a local cluster's start and stop, every worker's,
    "Lost all workers" as the run ends, and a hint to install jupyter-server-proxy (a package
    the pipeline does not use) each time a dashboard starts: about forty lines a run in the
    output of the process that runs it. They stay out unless :data:`VERBOSE` is set or the
    Dask configuration sets a logging level itself (its ``logging`` or
    ``distributed.logging`` section, or ``logging-file-config``), which is then obeyed.
    Worker processes set up their own logging when they start: they learn the level through
    the environment they inherit. Returns what undoes it (the runner calls it once its cluster
    is closed: the process's logging and environment are as they were), or None if it left
    the logs alone.
    """
    import dask

    if os.environ.get(VERBOSE) or any(dask.config.get(key, None) for key in (
            "logging", "distributed.logging", "logging-file-config")):
        return None
    with _QUIET_LOCK:
        if not _QUIET:  # the first run to quiet them keeps what to restore
            logger = logging.getLogger("distributed")
            _QUIET["saved"] = (logger.level, os.environ.get(_DASK_LEVEL))
            logger.setLevel(logging.WARNING)
            os.environ.setdefault(_DASK_LEVEL, "warning")
        _QUIET["runs"] = _QUIET.get("runs", 0) + 1
    return _loud_again


#: The runs that quieted Dask's logs in this process (a serve process runs several at once):
#: the last one to finish restores the level and the environment the first one found.
_QUIET: dict[str, Any] = {}
_QUIET_LOCK = threading.Lock()
_DASK_LEVEL = "DASK_LOGGING__DISTRIBUTED"


def _loud_again() -> None:
    with _QUIET_LOCK:
        _QUIET["runs"] -= 1
        if _QUIET["runs"]:
            return
        level, variable = _QUIET.pop("saved")
        _QUIET.clear()
        logging.getLogger("distributed").setLevel(level)
        if variable is None:
            os.environ.pop(_DASK_LEVEL, None)


def cluster_settings(options: DaskOptions) -> dict[str, Any]:
    """``DaskTaskRunner`` keywords: an existing scheduler when an address is given, else a
    local cluster for the run, listening on 127.0.0.1 only."""
    if options.address:
        return {"address": options.address}
    # Loopback only, and no fixed port: the scheduler, the workers and the dashboard listen on
    # 127.0.0.1 (tests/flows/test_lifecycle.py checks every socket). Threads-only clusters
    # talk in-process and take no host.
    where = {"host": "127.0.0.1"} if options.processes else {}
    return {"cluster_class": "distributed.LocalCluster", "cluster_kwargs": {
        "n_workers": options.n_workers,
        "threads_per_worker": options.threads_per_worker,
        "processes": options.processes,
        "dashboard_address": "127.0.0.1:0",
        # A worker's own HTTP server otherwise listens on all interfaces (0.0.0.0 and ::).
        "worker_dashboard_address": "127.0.0.1:0",
        **where,
    }}


class RunDaskTaskRunner(DaskTaskRunner):
    """A ``DaskTaskRunner`` configured by the flow run's own ``dask`` parameter.

    Prefect enters a flow's task runner before the flow body runs, and prefect-dask creates
    its client (and the cluster) only when first asked for it. This runner takes the address
    or the local cluster's settings at that moment from the run's parameters;
    :meth:`start_cluster` starts the cluster on a thread while the flow plans, and the first
    submit waits for it.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._starting: threading.Thread | None = None
        self._loud_again: Callable[[], None] | None = None  # quiet_dask_logs' undo

    def duplicate(self) -> RunDaskTaskRunner:
        return type(self)()

    def __reduce__(self):
        # Prefect ships the flow (and so its runner) with every task: it travels unstarted.
        return type(self), ()

    def configure(self, options: DaskOptions) -> None:
        """Use these options (before the client exists)."""
        settings = cluster_settings(options)
        self.address = settings.get("address")
        self.cluster_kwargs = settings.get("cluster_kwargs", {})
        self.cluster_class = None if self.address else settings["cluster_class"]
        self.resolved_cluster_class = None

    @property
    def client(self):
        with self._lock:
            if self._client is None and not self.address and not self.cluster_kwargs:
                context = FlowRunContext.get()
                value = (context.parameters if context else {}).get("dask")
                self.configure(value if isinstance(value, DaskOptions) else
                               DaskOptions.model_validate(value or {}))
            if self._client is None and self._loud_again is None:
                self._loud_again = quiet_dask_logs()
            return DaskTaskRunner.client.fget(self)

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        """prefect-dask's ``submit``, with ``pure=False``.

        Dask otherwise names the work by a hash of its arguments: the job, and the serialized
        Prefect context with every setting, which it walks for ~0.1 s a task (profiled). The
        task run id in those arguments is new every time, so the hash never named anything
        twice; a random key is the same contract without the walk.
        """
        if not self._started:
            raise RuntimeError("The task runner must be started before submitting work.")
        parameters = self._optimize_futures(parameters)
        wait_for = self._optimize_futures(wait_for) if wait_for else None
        future = self.client.submit(task, parameters=parameters, wait_for=wait_for,
                                    dependencies=dependencies, return_type="state", pure=False)
        return PrefectDaskFuture(wrapped_future=future, task_run_id=future.task_run_id)

    def start_cluster(self, options: DaskOptions) -> None:
        """Start the cluster and its client on a thread (an error surfaces at first use)."""
        self.configure(options)

        def start():
            try:
                self.client  # noqa: B018 (the property starts the cluster)
            except Exception:  # raised again by the first submit
                pass

        self._starting = threading.Thread(target=start, name="dask-cluster-start",
                                          daemon=True)
        self._starting.start()

    def __exit__(self, *args: Any) -> None:
        if self._starting is not None:  # never close the stack under a cluster being made
            self._starting.join()
        try:
            super().__exit__(*args)
        finally:  # after the cluster's own closing lines
            if self._loud_again is not None:
                self._loud_again()
                self._loud_again = None
