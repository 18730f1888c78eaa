"""The ``spectral-clustering`` flow: plan, then the five stages on a Dask cluster."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect_dask import DaskTaskRunner

from tasks import planning, stages

from .params import DaskOptions, SpectralParams

STAGE_TASKS = {
    "sample_landmarks": stages.sample_landmarks,
    "kernel_blocks": stages.kernel_blocks,
    "eigendecompose": stages.eigendecompose,
    "embed": stages.embed,
    "assign_labels": stages.assign_labels,
}


def make_task_runner(options: DaskOptions) -> DaskTaskRunner:
    """An existing scheduler when an address is given, else a local cluster for the run."""
    if options.address:
        return DaskTaskRunner(address=options.address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": options.n_workers,
            "threads_per_worker": options.threads_per_worker,
            "processes": options.processes,
            "dashboard_address": None,
        },
    )


@flow(name="spectral-stages", log_prints=False)
def run_stages(job: dict[str, Any]) -> dict[str, Any]:
    """The stages in order, each a task on the Dask cluster; completed stages are Cached."""
    stages.validate_input.submit(job).result()
    refs: dict[str, dict[str, Any]] = {}
    states: dict[str, str] = {}
    upstream: dict[str, Any] | None = None
    for name, stage_task in STAGE_TASKS.items():
        # A stage whose checkpoint is gone must not be served from Prefect's cache.
        runner = stage_task if job["complete"][name] else \
            stage_task.with_options(refresh_cache=True)
        future = runner.submit(job) if upstream is None else runner.submit(job, upstream)
        upstream = future.result()
        refs[name], states[name] = upstream, future.state.name
    return planning.write_outputs.submit(job, refs, states).result()


@flow(name="spectral-clustering")
def spectral_clustering(params: SpectralParams) -> dict[str, Any]:
    """Cluster a Parquet dataset: labels.parquet, summary.json and checkpoints for resume."""
    logger = get_run_logger()
    job = planning.plan(params.model_dump(exclude={"dask"}))
    logger.info("spectral-clustering: %s", "attaching to " + params.dask.address
                if params.dask.address else "starting a local Dask cluster")
    result = run_stages.with_options(task_runner=make_task_runner(params.dask))(job)
    logger.info("spectral-clustering: cluster sizes %s", result["cluster_sizes"])
    return result
