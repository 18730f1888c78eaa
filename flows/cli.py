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
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
import os
import sys
import threading
import time
import types
import typing
from pathlib import Path
from typing import Any

#: Quiet, offline-friendly defaults for the embedded mode (a user's own settings win).
_ENV_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DASK_DISTRIBUTED__WORKER__DAEMON": "false",
}


def _environment() -> None:
    for key, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


# --------------------------------------------------------------------------------------------
# Flags generated from the parameter model, so --help documents every parameter
# --------------------------------------------------------------------------------------------

_POSITIONAL = {"input"}
#: Options of the command itself, not parameters of the run.
_NOT_PARAMETERS = ("command", "func", "verbose", "report")
_RENAMED = {"output_dir": "output"}


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    from .params import DaskOptions, SpectralParams

    data = parser.add_argument_group("data")
    est = parser.add_argument_group("estimator (SpectralClustering's parameters)")
    dask = parser.add_argument_group("dask")
    for name, field in SpectralParams.model_fields.items():
        if name in _POSITIONAL or name == "dask":
            continue
        group = data if name in ("output_dir", "checkpoint_dir", "feature_columns",
                                 "id_column", "block_size") else est
        _add_flag(group, _RENAMED.get(name, name), field, dest=name)
    for name, field in DaskOptions.model_fields.items():
        _add_flag(dask, f"dask_{name}" if name != "address" else "dask_address", field,
                  dest=f"dask.{name}")


def _add_flag(group, name: str, field, *, dest: str) -> None:
    flag = "--" + name.replace("_", "-")
    default = field.get_default(call_default_factory=True)
    helptext = (field.description or "") + f" (default: {default!r})"
    kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": helptext}
    types, literals = _flatten(field.annotation)
    if types == {bool}:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    kwargs["type"] = _converter(types, literals)
    shown = [str(v) for v in literals] + [_TYPE_WORDS[t] for t in (int, float, dict, list, str)
                                          if t in types]
    kwargs["metavar"] = ("{" + ",".join(shown) + "}") if not types - {type(None)} else \
        "|".join(shown)
    if type(None) in types:
        kwargs["help"] += "; an empty value ('') means None"
    group.add_argument(flag, **kwargs)


_TYPE_WORDS = {int: "INT", float: "FLOAT", str: "TEXT", dict: "JSON", list: "A,B,..."}


def _flatten(annotation) -> tuple[set[Any], list[Any]]:
    """The base types and the literal values an annotation accepts (through Union,
    Optional, Annotated and Literal)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _flatten(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return set(), list(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        kinds: set[Any] = set()
        literals: list[Any] = []
        for a in typing.get_args(annotation):
            k, lit = _flatten(a)
            kinds |= k
            literals += lit
        return kinds, literals
    if annotation is None or annotation is type(None):
        return {type(None)}, []
    return {origin or annotation}, []


def _converter(kinds: set[Any], literals: list[Any]):
    """Text from the command line to a value of one of ``kinds`` or ``literals``, or a
    one-line ``ArgumentTypeError`` that says what was expected."""
    def convert(text: str) -> Any:
        if text == "" and type(None) in kinds:
            return None
        for literal in literals:
            if text == str(literal):
                return literal
        for kind in (int, float):
            if kind in kinds:
                try:
                    return kind(text)
                except ValueError:
                    pass
        if dict in kinds:
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(f"{text!r} is not valid JSON ({exc.msg} at "
                                                 f"character {exc.pos})") from None
            if not isinstance(value, dict):
                raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object")
            return value
        if list in kinds:
            return [c for c in text.split(",") if c]
        if str in kinds:
            return text
        expected = [repr(v) for v in literals] + [
            {int: "an int", float: "a number", type(None): "'' for None"}[k]
            for k in (int, float, type(None)) if k in kinds]
        raise argparse.ArgumentTypeError(
            f"{text!r} is not " + (expected[0] if len(expected) == 1 else
                                   ", ".join(expected[:-1]) + " or " + expected[-1]))
    convert.__name__ = "value"  # argparse names the converter in some messages
    return convert


def _params_from_args(args: argparse.Namespace, **extra: Any):
    from .params import SpectralParams

    values: dict[str, Any] = {}
    dask: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith("dask."):
            dask[key[5:]] = value
        elif key not in _NOT_PARAMETERS:
            values[key] = value
    values.update(extra)
    if dask:
        values["dask"] = dask
    return SpectralParams(**values)


# --------------------------------------------------------------------------------------------
# Running the flow with a terminal display
# --------------------------------------------------------------------------------------------


class _TerminalProgress(logging.Handler):
    """One updating line per stage, fed by the flow's progress log records."""

    def __init__(self, stream):
        super().__init__(logging.INFO)
        self.stream = stream
        self.tty = stream.isatty()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if " parts" not in msg and not ("Finished in state Completed" in msg
                                        or "Finished in state Cached" in msg):
            return  # a failure is the command's own one line
        line = msg if " parts" in msg else f"{getattr(record, 'task_run_name', '')} {msg}"
        if self.tty:
            self.stream.write("\r\033[K" + line[:120])
            if "Finished" in msg:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


_SERVER = None
_FREEZING = False


def _freeze_at_exit() -> None:
    """Freeze every object just before the interpreter tears itself down.

    Finalization runs full collections over everything the modules made (~1.3 s after a run
    here, benchmarks/profile.md); frozen objects are skipped and the process simply ends.
    Registered before Prefect, Dask and the local server register theirs, so it runs after
    them (atexit runs the last-registered first).
    """
    global _FREEZING
    if not _FREEZING:
        atexit.register(gc.freeze)
        _FREEZING = True


def _launch_local_server():
    """Start booting a local Prefect server now unless ``PREFECT_API_URL`` is set.

    It boots (~7 s here) while this process imports Prefect, Dask and scikit-learn; waiting
    for it only when the flow is about to start overlaps the two (benchmarks/profile.md). It is
    stopped at exit, after Prefect has drained its log and event queues into it (atexit runs
    the last-registered first, and Prefect registers its drains when they start).
    """
    global _SERVER
    if _SERVER is None and not os.environ.get("PREFECT_API_URL"):
        from .server import LocalServer

        _SERVER = LocalServer().launch()
        atexit.register(_stop_local_server)
    return _SERVER


def _stop_local_server() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


#: What the command reports in one line and exit status 2 (a bad input or parameter, found
#: before or during the run), and Ctrl-C (status 130): Prefect's console shows no traceback
#: for these unless --verbose; its API log (and UI) keeps them.
EXPECTED = (ValueError, TypeError)


class _ExpectedErrors(logging.Filter):
    """Drops Prefect's console records of an expected error or of Ctrl-C, and its "Finished
    in state Failed" lines: the command reports how a run ended (one line for an expected
    error, the traceback of any other)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (*EXPECTED, KeyboardInterrupt)):
            return False
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        # Ctrl-C's "Crash detected! Execution was aborted by an interrupt signal." (or "...
        # interrupted by an unexpected exception: KeyboardInterrupt") carries no exc_info.
        return not (message.startswith("Finished in state") or "KeyboardInterrupt" in message
                    or "interrupt signal" in message)


def _warm_up(params) -> None:
    """On a thread: import (and set up) what this process needs later in the run.

    With the default cluster (Dask threads in this process) the tasks load scikit-learn for
    the label assignment and matplotlib for the report, and Prefect loads FastAPI's encoder to
    create the flow run. Loaded here, they load while the local server finishes booting (the
    process would otherwise sit idle; benchmarks/profile.md). Not with a running server (no
    wait to fill: measured no faster) nor for a cluster elsewhere (its workers draw).
    """
    if not params.dask.in_this_process:
        return

    def warm() -> None:
        try:
            import fastapi.encoders  # noqa: F401

            from spectral_core import blocks
            from spectral_pipeline.tasks import report

            blocks.make_assigner  # noqa: B018 (loads scikit-learn's KMeans)
            report.warm_up()
        except Exception:  # only a head start: the run imports these itself
            logging.getLogger(__name__).debug("warm-up failed", exc_info=True)

    threading.Thread(target=warm, name="spectral-warm-up", daemon=True).start()


def run_flow(params, *, quiet: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Run the flow in this process (starting a local Prefect server if none is configured).

    Prefect's console log is shown from WARNING up, without the tracebacks of
    :data:`EXPECTED` errors (which the caller reports); on a terminal, one progress line per
    stage. ``verbose``: Prefect's full console log, tracebacks included.
    """
    _environment()
    if not verbose:  # also for Dask worker processes, which configure their own logging
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    else:  # Dask's own INFO lines too (flows/runner.py)
        from .runner import VERBOSE

        os.environ[VERBOSE] = "1"
    _freeze_at_exit()
    gc.disable()  # the imports below allocate ~300,000 objects and free almost none
    try:
        server = _launch_local_server()
        from prefect.settings import get_current_settings

        if server is not None and get_current_settings().api.url not in (None, "",
                                                                         server.url):
            # An API configured in a Prefect profile (not the environment): use that one.
            _stop_local_server()
            server = None
        from .spectral import run_spectral
    finally:
        # What the imports made lives as long as the process: out of the collector's sight,
        # full collections during the run only walk what the run allocates.
        gc.freeze()
        gc.enable()
    if server is not None:
        _warm_up(params)
        server.wait()
    from prefect.logging.handlers import PrefectConsoleHandler

    consoles: list[logging.Handler] = []
    for lg in (logging.getLogger(), logging.getLogger("prefect")):
        consoles += [h for h in lg.handlers if isinstance(h, PrefectConsoleHandler)
                     and h not in consoles]
    levels = [h.level for h in consoles]
    quieter = _ExpectedErrors()
    handler = None
    if not verbose:
        for h in consoles:
            h.setLevel(max(h.level, logging.WARNING))
            h.addFilter(quieter)
    if not quiet and not verbose and sys.stderr.isatty():
        handler = _TerminalProgress(sys.stderr)
        logging.getLogger("prefect").addHandler(handler)
    try:
        return run_spectral(params)
    finally:
        gc.unfreeze()  # a caller that runs on (tests, a notebook) collects as before
        if handler:
            logging.getLogger("prefect").removeHandler(handler)
        for h, level in zip(consoles, levels, strict=True):
            h.setLevel(level)
            h.removeFilter(quieter)


def print_summary(result: dict[str, Any], seconds: float, out=sys.stdout) -> None:
    files = result["files"]
    print("", file=out)
    print(f"spectral-clustering: {result['rows']:,} rows in {seconds:.1f} s", file=out)
    for name, path in files.items():
        print(f"  {name:<10} {path}", file=out)
    sizes = result["cluster_sizes"]
    total = max(sum(sizes), 1)
    print("  clusters   " + ", ".join(f"{i}: {n:,} ({100 * n / total:.0f}%)"
                                      for i, n in enumerate(sizes)), file=out)
    print("  eigenvalues " + " ".join(f"{v:.4f}" for v in result["eigenvalues"]), file=out)
    if result.get("suggested_n_clusters") is not None:
        print(f"  suggested n_clusters {result['suggested_n_clusters']} (largest eigengap of "
              "the spectrum; see the report)", file=out)
    print("  stage              seconds", file=out)
    for stage, info in result["stages"].items():
        print(f"  {stage:<18} {info['seconds']:7.2f}{_reuse_note(info)}", file=out)


def _reuse_note(info: dict[str, Any]) -> str:
    """"(Cached: reused from checkpoint)", or how many of its parts a resumed stage reused."""
    if info["reused"]:
        return f"  ({info['state']}: reused from checkpoint)"
    parts, computed = info.get("parts"), info.get("parts_computed")
    if parts and computed is not None and computed < parts:
        return f"  ({parts - computed}/{parts} parts reused)"
    return ""


def _run(args: argparse.Namespace) -> int:
    """Check what needs no pass over the data, then start Prefect and run the flow."""
    from pydantic import ValidationError

    from spectral_pipeline.tasks.preflight import build_job

    values = _values_from_args(args)
    try:
        params = _params_from_args(args)
        # Paths, confinement, schema, columns, and the parameters against the row count:
        # refused here, before a server or a flow run exists. Files are not hashed (the flow's
        # plan does that, once).
        build_job(params.model_dump(exclude={"dask"}), hash_files=False)
    except (ValidationError, *EXPECTED) as exc:
        return _refuse(exc, values, args.verbose)
    start = time.perf_counter()
    try:
        result = run_flow(params, verbose=args.verbose)
    except EXPECTED as exc:  # found by a pass over the data (NaN, ids, a degenerate kernel)
        return _refuse(exc, values, args.verbose)
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


def _values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters the user typed, by field name (Dask options as ``dask.<name>``)."""
    return {k: v for k, v in vars(args).items() if k not in _NOT_PARAMETERS}


def _refuse(exc: BaseException, typed: dict[str, Any], verbose: bool) -> int:
    """Report a refused input or parameter as one line naming the flag; exit status 2."""
    if verbose:
        import traceback

        traceback.print_exception(exc)
    print(f"spectral-flow: {refusal_line(exc, typed)}", file=sys.stderr)
    return 2


def _flag(name: str) -> str:
    if name == "input":
        return "INPUT"
    if name.startswith("dask."):
        return "--dask-" + name[5:].replace("_", "-")
    return "--" + _RENAMED.get(name, name).replace("_", "-")


def _shown(name: str, value: Any, typed: dict[str, Any]) -> str:
    """``--gamma -1.0`` as typed, or ``--n-components (default 100)``."""
    if name not in typed:
        return f"{_flag(name)} (default {_text(value)})"
    return f"{_flag(name)} {_text(typed[name])}"


def _text(value: Any) -> str:
    if value is None:
        return "''"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def refusal_line(exc: BaseException, typed: dict[str, Any]) -> str:
    """The one line that says what was refused, in terms of the flags the user typed."""
    import re

    from spectral_core.params import PARAMETERS
    from spectral_pipeline.tasks.preflight import TooFewRows

    from .params import refusal

    if isinstance(exc, TooFewRows):
        return _too_few_rows(exc, typed)
    name, message = refusal(exc, typed)
    message = " ".join(message.split())  # one line
    if name is None or (name == "input" and "input" in typed):
        return message
    found = re.fullmatch(r"The '(\w+)' parameter of SpectralClustering must be (.*?)\. "
                         r"Got (.*?) instead\.(.*)", message)
    if found:  # the estimator's template: the constraint, with its other side as a flag
        def other(m: re.Match) -> str:
            return f"{_flag(m[1])}={m[2]}" + ("" if m[1] in typed else " (the default)")

        names = "|".join(PARAMETERS)
        constraint = re.sub(rf"\b({names})=([^\],) ]+)", other, found[2])
        message = f"must be {constraint}.{found[4]}"
    default = PARAMETERS[name].default if name in PARAMETERS else None
    return f"{_shown(name, typed.get(name, default), typed)}: {message}"


def _too_few_rows(exc, typed: dict[str, Any]) -> str:
    """n_clusters <= n_components < rows: name the typed side that breaks it."""
    rows, k, m = exc.n_rows, exc.values["n_clusters"], exc.values["n_components"]
    if k >= rows:
        return (f"{_shown('n_clusters', k, typed)}: the input has only {rows} rows, so at most "
                f"{rows - 1} clusters (--n-clusters <= --n-components, the landmark rows, which "
                "must be fewer than the rows).")
    return (f"{_shown('n_components', m, typed)}: must be < the input's {rows} rows (it is the "
            f"number of landmark rows); use a value in [{k}, {rows - 1}] (at least "
            f"--n-clusters {k}).")


# --------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------


def write_digits(folder: Path) -> tuple[Path, Any]:
    """scikit-learn's digits as a Parquet dataset (3 files), with the true digit as a column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(X.shape[0]), 3)):
        table = pa.table({"image_id": rows, "digit": y[rows],
                          **{f"pixel_{j}": X[rows, j] for j in range(X.shape[1])}})
        pq.write_table(table, folder / f"digits-{i}.parquet", row_group_size=300)
    return folder, y


def write_blobs(folder: Path, rows: int, *, features: int = 10, clusters: int = 8,
                rows_per_file: int = 1_000_000, seed: int = 0) -> tuple[Path, Any]:
    """A synthetic Gaussian-blob dataset of any size, written file by file (bounded memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(clusters, features))
    folder.mkdir(parents=True, exist_ok=True)
    truth = []
    for i, start in enumerate(range(0, rows, rows_per_file)):
        n = min(rows_per_file, rows - start)
        y = rng.integers(clusters, size=n)
        X = (centres[y] + rng.standard_normal((n, features))).astype(np.float32)
        table = pa.table({"row_id": np.arange(start, start + n), "truth": y,
                          **{f"x{j}": X[:, j] for j in range(features)}})
        pq.write_table(table, folder / f"blobs-{i:04d}.parquet", row_group_size=65_536)
        truth.append(y)
    return folder, np.concatenate(truth)


def _demo(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq
    from sklearn.metrics import adjusted_rand_score

    from .params import SpectralParams

    _launch_local_server()  # boots while the data is written and the modules load
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
    _add_model_flags(run)
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


def main(argv: list[str] | None = None) -> int:
    """The command; a Prefect server starts only once the checks that need no data pass."""
    _environment()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print("spectral-flow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
