"""The ``spectral-clustering`` flow: plan, then the five stages on a Dask cluster."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect_dask import DaskTaskRunner

from tasks import planning, stages
from tasks.io import CorruptCheckpoint, retract_manifest
from tasks.job import Job

from .params import DaskOptions, SpectralParams

STAGE_TASKS = {
    "sample_landmarks": stages.sample_landmarks,
    "kernel_blocks": stages.kernel_blocks,
    "eigendecompose": stages.eigendecompose,
    "embed": stages.embed,
    "assign_labels": stages.assign_labels,
}
#: How many times a run recomputes committed parts found corrupt before it gives up.
REPAIRS = 2


def make_task_runner(options: DaskOptions) -> DaskTaskRunner:
    """An existing scheduler when an address is given, else a local cluster for the run."""
    if options.address:
        return DaskTaskRunner(address=options.address)
    # Loopback only, and no fixed port: the scheduler, the workers and the dashboard listen on
    # 127.0.0.1 (tests/flows/test_lifecycle.py checks every socket). Threads-only clusters
    # talk in-process and take no host.
    where = {"host": "127.0.0.1"} if options.processes else {}
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": options.n_workers,
            "threads_per_worker": options.threads_per_worker,
            "processes": options.processes,
            "dashboard_address": "127.0.0.1:0",
            # A worker's own HTTP server otherwise listens on all interfaces (0.0.0.0 and ::).
            "worker_dashboard_address": "127.0.0.1:0",
            **where,
        },
    )


@flow(name="spectral-stages", log_prints=False)
def run_stages(job: Job) -> dict[str, Any]:
    """The stages in order, each a task on the Dask cluster; committed stages are Cached."""
    # prefect-dask ships this function by value with every task; a deployment loads this file
    # by path (module 'spectral', which the scheduler cannot import), so the body refers to
    # nothing defined in this module but constants and the task table.
    stages.validate_input.submit(job).result()
    for repair in range(REPAIRS + 1):
        try:
            refs: dict[str, dict[str, Any]] = {}
            states: dict[str, str] = {}
            upstream: dict[str, Any] | None = None
            for name, stage_task in STAGE_TASKS.items():
                future = stage_task.submit(job) if upstream is None else \
                    stage_task.submit(job, upstream)
                upstream = future.result()
                refs[name], states[name] = upstream, future.state.name
            return planning.write_outputs.submit(job, refs, states).result()
        except CorruptCheckpoint as exc:
            # A committed part that cannot be read back: forget it and its stage's manifest;
            # the next round recomputes that part alone (the others pass their footer check).
            if repair == REPAIRS:
                raise
            get_run_logger().warning("%s", exc)
            store = job.stage_store(exc.stage)
            store.remove(exc.name)
            retract_manifest(store)
    raise AssertionError("unreachable")


@flow(name="spectral-clustering")
def spectral_clustering(params: SpectralParams) -> dict[str, Any]:
    """Cluster a Parquet dataset: labels/, summary.json and checkpoints for resume."""
    logger = get_run_logger()
    job = planning.plan(params.model_dump(exclude={"dask"}))
    logger.info("spectral-clustering: %s", "attaching to " + params.dask.address
                if params.dask.address else "starting a local Dask cluster")
    result = run_stages.with_options(task_runner=make_task_runner(params.dask))(job)
    logger.info("spectral-clustering: cluster sizes %s", result["cluster_sizes"])
    return result
