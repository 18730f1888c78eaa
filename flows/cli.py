"""``spectral-flow``: run the spectral-clustering flow from a terminal.

    spectral-flow run INPUT --output DIR [--n-clusters 8 --affinity nearest_neighbors ...]
    spectral-flow demo [--rows N]

``run`` first makes every check that needs no pass over the data (paths, Parquet footers,
columns, parameters: :func:`spectral_pipeline.tasks.preflight.build_job`); a refusal is one line
naming the flag, exit status 2, and nothing was started. Then, with no Prefect API configured,
the command starts a local one for its own length (``prefect server start`` on 127.0.0.1,
without UI or scheduler, like Prefect's temporary server, but booting while Prefect, Dask and
the flow's modules import), and runs the stages on a local Dask cluster of threads in this
process, so nothing has to be started by hand. Worker processes (``--dask-processes``) share
that same server.

This module is the command itself; its parts are :mod:`.flags` (the flags, from the parameter
model), :mod:`.running` (the server, the flow, the terminal display), :mod:`.refusals` (the
one-line refusals) and :mod:`.demo_data` (the demo's datasets).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import typing
from pathlib import Path

from .flags import add_model_flags, params_from_args, values_from_args
from .refusals import refuse
from .running import environment, launch_local_server, print_summary, run_flow


def _run(args: argparse.Namespace) -> int:
    """Check what needs no pass over the data, then start Prefect and run the flow."""
    from spectral_pipeline.tasks.errors import StoreUnavailable, is_refusal
    from spectral_pipeline.tasks.preflight import build_job

    values = values_from_args(args)
    try:
        params = params_from_args(args)
        # Paths, confinement, schema, columns, and the parameters against the row count:
        # refused here, before a server or a flow run exists. Files are not hashed (the flow's
        # plan does that, once).
        build_job(params.request(), hash_files=False)
        start = time.perf_counter()
        result = run_flow(params, verbose=args.verbose)
    except StoreUnavailable as exc:  # an outage: not the user's input, and resumable
        if args.verbose:
            import traceback

            traceback.print_exception(exc)
        print(f"spectral-flow: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if is_refusal(exc):  # before the run, or found by its pass over the data
            return refuse(exc, values, args.verbose)
        raise
    print_summary(result, time.perf_counter() - start)
    if args.report:
        return _copy_report(params, args.report)
    return 0


def _copy_report(params, path: str) -> int:
    """--report: the run's report.html (in the output directory, which may be an object
    store) copied to a local path."""
    from spectral_pipeline.tasks.storage import open_store

    try:
        data = open_store(params.output_dir, params.storage_options,
                          what="output directory").read_bytes("report.html")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except (OSError, ValueError) as exc:
        print(f"spectral-flow: the report could not be copied to {path!r}: {exc}",
              file=sys.stderr)
        return 1
    print(f"  report     {target}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq
    from sklearn.metrics import adjusted_rand_score

    from .demo_data import write_blobs, write_digits
    from .params import SpectralParams

    launch_local_server()  # boots while the data is written and the modules load
    out = Path(args.output)
    if args.rows:
        data, _ = write_blobs(out / "data", args.rows, seed=args.random_state)
        params = SpectralParams(
            input=str(data), output_dir=str(out), id_column="row_id",
            feature_columns=[f"x{j}" for j in range(10)], n_clusters=8, gamma=0.1,
            n_components=100, random_state=args.random_state, block_size=131_072,
        )
        truth_col, id_col = "truth", "row_id"
        what = f"{args.rows:,} synthetic rows (8 Gaussian blobs, 10 features)"
    else:
        data, _ = write_digits(out / "data")
        params = SpectralParams(
            input=str(data), output_dir=str(out), id_column="image_id",
            feature_columns=[f"pixel_{j}" for j in range(64)], n_clusters=10,
            affinity="nearest_neighbors", n_neighbors=5, n_components=300,
            landmarks="kmeans", random_state=args.random_state, block_size=600,
        )
        truth_col, id_col = "digit", "image_id"
        what = "scikit-learn's digits (1,797 images, 64 pixels), written to Parquet"
    print(f"spectral-flow demo: {what} in {data}")
    start = time.perf_counter()
    result = run_flow(params, verbose=args.verbose)
    seconds = time.perf_counter() - start
    print_summary(result, seconds)
    truth = pq.read_table(data, columns=[id_col, truth_col]).to_pandas().set_index(id_col)
    labels = pq.read_table(result["files"]["labels"]).to_pandas().set_index(id_col)
    ari = adjusted_rand_score(truth.loc[labels.index, truth_col], labels["label"])
    print(f"  ARI against the true {'digits' if not args.rows else 'blobs'}: {ari:.3f}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (``spectral-flow: --flag: problem``)."""

    def error(self, message: str) -> typing.NoReturn:
        message = message.removeprefix("argument ")
        self.exit(2, f"spectral-flow: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spectral-flow",
        description="Nyström spectral clustering of a Parquet dataset as a Prefect flow on Dask.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="cluster a Parquet dataset",
                         description="Cluster a Parquet dataset. Every SpectralClustering "
                         "parameter is a flag; reruns with the same input and parameters "
                         "resume from the checkpoints.")
    run.add_argument("input", help="a Parquet file, a directory of Parquet files, or a glob")
    add_model_flags(run)
    run.add_argument("--report", default=None, metavar="PATH",
                     help="also write the run's report (report.html: the spectrum with the "
                     "suggested n_clusters, cluster sizes, the embedding) to this local path")
    run.set_defaults(func=_run)
    demo = sub.add_parser("demo", help="the flow end to end on real data (digits), or on a "
                          "synthetic dataset of any size with --rows")
    for command in (run, demo):
        command.add_argument("--verbose", action="store_true", help="Prefect's full console "
                             "log, and the traceback of a refused input or a Ctrl-C")
    demo.add_argument("--output", default="spectral-demo", help="output directory "
                      "(default: spectral-demo)")
    demo.add_argument("--rows", type=int, default=0, help="cluster N synthetic rows instead "
                      "of the digits (written to Parquet first)")
    demo.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    demo.set_defaults(func=_demo)
    return parser


class _CtrlC:
    """SIGINT's handler while the command runs: Python's own (it raises KeyboardInterrupt),
    remembering that it fired. Code between the signal and the command may turn the
    KeyboardInterrupt into another error (pydantic reports one raised inside a serializer as
    a ``PydanticSerializationError``, seen when Ctrl-C landed while Prefect serialized a
    task's context); the command still reports a Ctrl-C."""

    def __init__(self) -> None:
        self.fired = False

    def __call__(self, signum, frame):
        self.fired = True
        signal.default_int_handler(signum, frame)

    def __enter__(self) -> _CtrlC:
        self._old = signal.getsignal(signal.SIGINT)
        # An inherited SIG_IGN (a background job) stays ignored, and so does a handler the
        # caller set; only the main thread may set one.
        if (self._old is signal.default_int_handler
                and threading.current_thread() is threading.main_thread()):
            signal.signal(signal.SIGINT, self)
        return self

    def __exit__(self, *exc) -> None:
        if signal.getsignal(signal.SIGINT) is self:
            signal.signal(signal.SIGINT, self._old)


def main(argv: list[str] | None = None) -> int:
    """The command; a Prefect server starts only once the checks that need no data pass."""
    environment()
    args = build_parser().parse_args(argv)
    with _CtrlC() as ctrl_c:
        try:
            return args.func(args)
        except BaseException as exc:
            if not (isinstance(exc, KeyboardInterrupt) or ctrl_c.fired):
                raise
            if args.verbose:
                import traceback

                traceback.print_exc()
            print("spectral-flow: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
