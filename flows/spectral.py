"""The ``spectral-clustering`` flow: plan, then every stage as a task on a Dask cluster.

One flow run holds everything a user looks at: the plan, the stage task runs, their progress
artifacts and the summary. Which Dask cluster runs the tasks is a run parameter (``dask``), so
the flow's task runner reads it from the run when the first task is submitted, rather than
being fixed when the flow is defined (a fixed runner would need a subflow per cluster, and a
second run page).
"""

from __future__ import annotations

import time
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
from spectral_pipeline.tasks import planning, summary
from spectral_pipeline.tasks.checkpoints import CorruptCheckpoint, retract_manifest
from spectral_pipeline.tasks.stage import REGISTRY
from spectral_pipeline.tasks.stages import STAGES

# Imports are absolute: a file entrypoint (`flows/spectral.py:...`) loads this file by path as
# a module of its own, and Prefect ships the flow with every task; what it refers to must
# import on any worker.

#: How many times a run recomputes committed parts found corrupt before it gives up.
REPAIRS = 2


def _spectral_clustering(**parameters: Any) -> dict[str, Any]:
    # The one validation of a run's parameters (Prefect's own is off: validate_parameters):
    # types, bounds and the rules between parameters, with the estimator's messages.
    params = SpectralParams(**parameters)
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
    started = time.perf_counter()
    job = planning.plan(params.request())
    planned = {"seconds": time.perf_counter() - started, "state": "Completed"}
    for repair in range(REPAIRS + 1):
        try:
            refs: dict[str, dict[str, Any]] = {}
            states: dict[str, str] = {}
            futures: dict[str, Any] = {}
            # The stages in the order of the registry. Each task waits for the stage it is
            # declared `after` (wait_for: the run's graph shows the chain), which is done
            # already: its reference is needed before the next one is submitted.
            for name in STAGES:
                after = REGISTRY[name].after
                futures[name] = REGISTRY[name].task.submit(
                    job, wait_for=[futures[after]] if after else [])
                refs[name], states[name] = futures[name].result(), futures[name].state.name
            result = summary.write_report.submit(job, refs, states, planned,
                                                 wait_for=[futures[STAGES[-1]]]).result()
            logger.info("spectral-clustering: cluster sizes %s", result["cluster_sizes"])
            return result
        except CorruptCheckpoint as exc:
            # A committed part that cannot be read back: forget it and its stage's manifest;
            # the next round recomputes that part alone (the others pass their footer check).
            if repair == REPAIRS:
                raise
            logger.warning("%s", exc)
            broken = REGISTRY[exc.stage]
            store = broken.store(job)
            store.remove(exc.name)
            retract_manifest(store, broken.manifest_name)
    raise AssertionError("unreachable")


_spectral_clustering.__signature__ = flow_signature()
_spectral_clustering.__doc__ = flow_docstring(
    "Cluster a Parquet dataset: labels/, summary.json and checkpoints for resume.")
_spectral_clustering.__name__ = _spectral_clustering.__qualname__ = "spectral_clustering"

spectral_clustering = flow(name="spectral-clustering", task_runner=RunDaskTaskRunner(),
                           validate_parameters=False)(_spectral_clustering)


def run_spectral(params: SpectralParams) -> dict[str, Any]:
    """Run the flow on validated parameters (the CLI's and the tests' entry point).

    The model's fields become the flow's keyword arguments; the flow returns its summary
    (the dictionary written as ``summary.json``).
    """
    return spectral_clustering(**flow_parameters(params))
