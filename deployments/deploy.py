"""Register the ``nightly`` and ``on-demand`` deployments on a work pool.

    prefect work-pool create spectral-pool --type process
    python -m spectral_pipeline.deployments.deploy --work-pool spectral-pool
    prefect worker start --pool spectral-pool

The deployments name the flow by its module, so a worker runs them wherever this package is
installed: no checkout, image or code storage. Flow runs start in the worker's working
directory, where relative paths in their parameters resolve. Configuration:
:mod:`spectral_pipeline.deployments.definitions`.
"""

from __future__ import annotations

import argparse

from prefect import deploy

from spectral_pipeline.deployments.definitions import nightly, on_demand


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m spectral_pipeline.deployments.deploy",
        description="Register the nightly and on-demand deployments on a work pool.")
    parser.add_argument("--work-pool", required=True,
                        help="the work pool's name (create it first, of type 'process')")
    args = parser.parse_args(argv)
    deploy(nightly(), on_demand(), work_pool_name=args.work_pool,
           print_next_steps_message=False, ignore_warnings=True)


if __name__ == "__main__":
    main()
