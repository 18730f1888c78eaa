"""Serve the ``nightly`` and ``on-demand`` deployments from this process (no work pool).

    python -m spectral_pipeline.deployments.serve [--verbose]

The process polls the Prefect API and runs each flow run in a subprocess; keep it running
(a service, a container). Configuration: :mod:`spectral_pipeline.deployments.definitions`.
"""

from __future__ import annotations

from prefect import serve

from spectral_pipeline.deployments.definitions import RECOMMENDED, nightly, on_demand

__all__ = ["RECOMMENDED", "main"]


def main(argv: list[str] | None = None) -> None:
    import argparse
    import os

    from spectral_pipeline.flows.runner import VERBOSE

    parser = argparse.ArgumentParser(prog="python -m spectral_pipeline.deployments.serve",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true",
                        help="keep Dask's INFO lines (cluster and worker start and stop) in "
                        "the runs' output")
    args = parser.parse_args(argv)
    if args.verbose:
        os.environ[VERBOSE] = "1"  # the flow runs (subprocesses) inherit it
    serve(nightly(), on_demand())


if __name__ == "__main__":
    main()
