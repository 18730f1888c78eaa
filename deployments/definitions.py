"""The ``nightly`` and ``on-demand`` deployments of the flow, served or deployed.

    python -m spectral_pipeline.deployments.serve                     # no work pool needed
    python -m spectral_pipeline.deployments.deploy --work-pool NAME   # on a process work pool

Both name the flow by its module (``spectral_pipeline.flows.spectral.spectral_clustering``),
so they work the same from a checkout and from an installed package, whatever the working
directory. Configuration comes from the environment (so one file serves every site):

- ``SPECTRAL_NIGHTLY_INPUT`` / ``SPECTRAL_NIGHTLY_OUTPUT``: the dataset the nightly run
  clusters and where its outputs go (default ``data/nightly`` and ``spectral-output/nightly``).
- ``SPECTRAL_NIGHTLY_CRON``: its schedule (default ``0 2 * * *``, 02:00 every day, UTC);
  ``SPECTRAL_NIGHTLY_INTERVAL`` (seconds) replaces the cron with an interval.
- ``SPECTRAL_ON_DEMAND_INPUT`` / ``SPECTRAL_ON_DEMAND_OUTPUT``: defaults of the on-demand form.
- ``SPECTRAL_ALLOWED_ROOTS``: directories (``:``-separated) that every path parameter must
  resolve into; set it whenever people other than the operator can trigger runs.
"""

from __future__ import annotations

import os
from datetime import timedelta

from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.deployments.runner import EntrypointType, RunnerDeployment

from spectral_pipeline.flows.spectral import spectral_clustering

#: The recommended configuration (see the benchmarks page's accuracy table). The flow's
#: parameters are top-level, so a run that sets some of them keeps the rest of these.
RECOMMENDED = {"affinity": "nearest_neighbors", "n_neighbors": 5, "n_components": 500,
               "landmarks": "kmeans", "assign_labels": "consensus", "n_clusters": 8,
               "random_state": 0}


def nightly() -> RunnerDeployment:
    """The scheduled deployment (``SPECTRAL_NIGHTLY_*``)."""
    env = os.environ
    interval = env.get("SPECTRAL_NIGHTLY_INTERVAL")
    schedule = ({"interval": timedelta(seconds=float(interval))} if interval else
                {"cron": env.get("SPECTRAL_NIGHTLY_CRON", "0 2 * * *")})
    return spectral_clustering.to_deployment(
        name="nightly",
        entrypoint_type=EntrypointType.MODULE_PATH,
        description="Scheduled clustering of the configured dataset; a failed run is retried "
                    "from its checkpoints.",
        tags=["spectral", "scheduled"],
        parameters={**RECOMMENDED,
                    "input": env.get("SPECTRAL_NIGHTLY_INPUT", "data/nightly"),
                    "output_dir": env.get("SPECTRAL_NIGHTLY_OUTPUT", "spectral-output/nightly")},
        enforce_parameter_schema=True,
        # One nightly run at a time: a run due while the last one still works is cancelled,
        # never stacked behind it (runs slower than their interval would pile up).
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy="CANCEL_NEW"),
        **schedule,
    )


def on_demand() -> RunnerDeployment:
    """The deployment triggered from the UI form, the CLI or the REST API."""
    env = os.environ
    return spectral_clustering.to_deployment(
        name="on-demand",
        entrypoint_type=EntrypointType.MODULE_PATH,
        description="Cluster any Parquet dataset: trigger from the UI form, the CLI or the "
                    "REST API.",
        tags=["spectral", "on-demand"],
        parameters={**RECOMMENDED,
                    "input": env.get("SPECTRAL_ON_DEMAND_INPUT", "data"),
                    "output_dir": env.get("SPECTRAL_ON_DEMAND_OUTPUT",
                                          "spectral-output/on-demand")},
        enforce_parameter_schema=True,
    )

