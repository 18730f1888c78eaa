"""The ``spectral-clustering`` flow: plan, then the five stages as tasks on a Dask cluster.

One flow run holds everything a user looks at: the plan, the stage task runs, their progress
artifacts and the summary. Which Dask cluster runs the tasks is a run parameter (``dask``), so
the flow's task runner reads it from the run when the first task is submitted, rather than
being fixed when the flow is defined (a fixed runner would need a subflow per cluster, and a
second run page).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext

import spectral_core.blocks
from spectral_pipeline.flows.params import (
    SpectralParams,
    flow_docstring,
    flow_parameters,
    flow_signature,
)
from spectral_pipeline.flows.runner import RunDaskTaskRunner
from spectral_pipeline.tasks import planning, stages
from spectral_pipeline.tasks.io import CorruptCheckpoint, retract_manifest

STAGE_TASKS = {
    "sample_landmarks": stages.sample_landmarks,
    "kernel_blocks": stages.kernel_blocks,
    "eigendecompose": stages.eigendecompose,
    "embed": stages.embed,
    "assign_labels": stages.assign_labels,
}
# Imports are absolute: a file entrypoint (`flows/spectral.py:...`) loads this file by path as
# a module of its own, and Prefect ships the flow with every task; what it refers to must
# import on any worker.

#: How many times a run recomputes committed parts found corrupt before it gives up.
REPAIRS = 2


def _spectral_clustering(**parameters: Any) -> dict[str, Any]:
    params = SpectralParams(**parameters)  # the rules between parameters, with their messages
    logger = get_run_logger()
    runner = FlowRunContext.get().task_runner
    if isinstance(runner, RunDaskTaskRunner):
        runner.start_cluster(params.dask)  # while the plan reads footers and hashes files
    if params.dask.in_this_process:
        # The stages run on threads of this process and need scikit-learn (the landmark
        # kernel, the label assignment): loaded now, not inside the first stage's timing.
        # (Already loaded when the command warmed up while its server booted.)
        spectral_core.blocks.make_assigner  # noqa: B018
    logger.info("spectral-clustering: %s", "attaching to " + params.dask.address
                if params.dask.address else "starting a local Dask cluster")
    # The plan runs here, in the flow's process: it needs no cluster.
    job = planning.plan(params.model_dump(exclude={"dask"}))
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
            result = planning.write_outputs.submit(job, refs, states).result()
            logger.info("spectral-clustering: cluster sizes %s", result["cluster_sizes"])
            return result
        except CorruptCheckpoint as exc:
            # A committed part that cannot be read back: forget it and its stage's manifest;
            # the next round recomputes that part alone (the others pass their footer check).
            if repair == REPAIRS:
                raise
            logger.warning("%s", exc)
            store = job.stage_store(exc.stage)
            store.remove(exc.name)
            retract_manifest(store)
    raise AssertionError("unreachable")


_spectral_clustering.__signature__ = flow_signature()
_spectral_clustering.__doc__ = flow_docstring(
    "Cluster a Parquet dataset: labels/, summary.json and checkpoints for resume.")
_spectral_clustering.__name__ = _spectral_clustering.__qualname__ = "spectral_clustering"

spectral_clustering = flow(name="spectral-clustering", task_runner=RunDaskTaskRunner())(
    _spectral_clustering)


def run_spectral(params: SpectralParams) -> dict[str, Any]:
    """Run the flow on validated parameters (the CLI's and the tests' entry point).

    The model's fields become the flow's keyword arguments; the flow returns its summary
    (the dictionary written as ``summary.json``).
    """
    return spectral_clustering(**flow_parameters(params))
