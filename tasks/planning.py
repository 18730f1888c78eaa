"""The task before the stages: plan the run (every check that needs no pass over the data)."""

from __future__ import annotations

from prefect import task

from .job import Job, RunRequest
from .preflight import build_job
from .stage import run_logger, task_options


@task(**task_options("plan"))
def plan(request: RunRequest) -> Job:
    """Reads Parquet footers (and hashes changed local files); checks parameters and paths.

    Every check that needs no pass over the data; it writes nothing.
    """
    from prefect.runtime import flow_run

    job = build_job(request, flow_run.get_id())
    run_logger().info(
        "plan: %d rows × %d features in %d files, %d blocks; checkpoint keys %s",
        job.plan.n_rows, job.plan.n_features, len(job.plan.files), len(job.plan.blocks),
        job.stage_keys)
    return job
