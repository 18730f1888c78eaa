"""Serve the ``nightly`` and ``on-demand`` deployments from this process (no work pool).

    python -m spectral_pipeline.deployments.serve

The process polls the Prefect API and runs each flow run in a subprocess; keep it running
(a service, a container). Configuration: :mod:`spectral_pipeline.deployments.definitions`.
"""

from __future__ import annotations

from prefect import serve

from spectral_pipeline.deployments.definitions import RECOMMENDED, nightly, on_demand

__all__ = ["RECOMMENDED", "main"]


def main() -> None:
    serve(nightly(), on_demand())


if __name__ == "__main__":
    main()
