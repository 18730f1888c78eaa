"""The whole flow on a large Parquet dataset: wall time per stage and peak memory.

    .venv/bin/pip install -q -e '.[benchmarks]'
    .venv/bin/python benchmarks/scale.py [--rows 10000000] [--rows-per-file 500000]
                                         [--running-server] [--repeats 10] [--store local,s3]
                                         [--vs /path/to/other/venv/bin/python]

Writes ``--rows`` × 10 float32 features (8 Gaussian blobs) as many Parquet files, runs the
``spectral-clustering`` flow on them in a fresh process (embedded default: the process starts a
local Prefect server and a local Dask cluster; with ``--running-server``, against a Prefect
server started beforehand and not timed, as a deployment's runs are) and samples, every 0.2 s,
the summed RSS of that process and all its children (the flow process, Dask workers, the
Prefect server it started). Prints one table: seconds per stage, total wall time, peak summed
RSS, ARI against the generating labels. With ``--repeats N`` the flow runs N times on the same
data (each run in a fresh process and a fresh output directory, so nothing resumes), one line
per run with its outcome; the exit code is non-zero unless every run completed.

``--vs PYTHON`` runs the same flow, on the same data, with another interpreter too (an
environment with another version of the project installed, e.g. a worktree of an earlier
commit), alternating run by run, and prints both side by side.

``--store local,s3`` runs the same flow with input, checkpoints and output on local disk and
on S3 (a SeaweedFS server on 127.0.0.1, started here, as the tests do; the data is uploaded
first, untimed), alternating, and prints the two side by side. The flow process's own peak
RSS is reported beside the tree's: it must not grow with n (labels are written on the
workers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

_RUN = r"""
import json, sys
try:
    from spectral_pipeline.flows.running import run_flow
except ModuleNotFoundError:  # a version from before the command was split (--vs)
    from spectral_pipeline.flows.cli import run_flow
from spectral_pipeline.flows.params import SpectralParams
params = SpectralParams(**json.loads(sys.argv[1]))
print("RESULT " + json.dumps(run_flow(params, quiet=True)))
"""


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # a child exited while being listed: count what is left
        tree = [proc]
    for p in tree:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_once(params: dict, env: dict, python: str = sys.executable, cwd: str | None = None
             ) -> dict:
    """One flow run in a fresh process: wall time, peak RSS (the tree's and the flow process's
    own), its result or its error. ``cwd`` must not be a checkout: ``python -c`` puts the
    working directory first on ``sys.path``, where a checkout's ``spectral_core`` would shadow
    the version installed for ``python``."""
    proc = subprocess.Popen([python, "-c", _RUN, json.dumps(params)], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps, peak, own, stop = psutil.Process(proc.pid), [0], [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(ps))
            try:
                own[0] = max(own[0], ps.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    run = {"wall": wall, "peak": peak[0], "own": own[0], "code": proc.returncode}
    if proc.returncode == 0:
        run["result"] = json.loads(out.split("RESULT ", 1)[1])
    else:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        run["error"] = lines[-1] if lines else f"exit code {proc.returncode}"
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rows-per-file", type=int, default=500_000)
    parser.add_argument("--n-components", type=int, default=100)
    parser.add_argument("--block-size", type=int, default=262_144)
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the flow this many times, each in a fresh process with a "
                        "fresh output directory (nothing resumes); report every run")
    parser.add_argument("--workdir", default=None, help="keep data and outputs here")
    parser.add_argument("--running-server", action="store_true",
                        help="start a Prefect server first (untimed) and run the flow on it")
    parser.add_argument("--store", default="local",
                        help="comma-separated: local, s3 (SeaweedFS on 127.0.0.1), alternating")
    parser.add_argument("--vs", default=None, metavar="PYTHON",
                        help="also run the flow with this interpreter (another version of the "
                             "project installed), alternating, side by side")
    args = parser.parse_args(argv)
    stores = args.store.split(",")
    if not set(stores) <= {"local", "s3"}:
        parser.error(f"--store takes local and/or s3, got {args.store!r}")
    pythons = {"this": sys.executable, **({"vs": args.vs} if args.vs else {})}

    here = Path(__file__).resolve()
    sys.path.insert(0, str(here.parents[1]))
    sys.path.insert(0, str(here.parent))
    import numpy as np
    import pyarrow.parquet as pq
    from machine import describe
    from sklearn.metrics import adjusted_rand_score

    from spectral_pipeline.flows.demo_data import write_blobs

    work = Path(args.workdir or tempfile.mkdtemp(prefix="spectral-scale-"))
    start = time.perf_counter()
    data, truth = write_blobs(work / "data", args.rows, rows_per_file=args.rows_per_file)
    gen_seconds = time.perf_counter() - start
    env = dict(os.environ)
    server = s3 = None
    roots = {"local": str(work)}
    try:
        if args.running_server:
            from spectral_pipeline.flows.server import LocalServer

            server = LocalServer().start()
            env["PREFECT_API_URL"] = server.url
        if "s3" in stores:
            s3, fs = _start_s3(args.rows, env)
            roots["s3"] = f"s3://{s3.bucket}"
            fs.put(str(data), f"{s3.bucket}/data", recursive=True)
        print(describe())
        print(f"{args.rows:,} rows × 10 features in {len(list(data.glob('*.parquet')))} files "
              f"(written in {gen_seconds:.0f} s), m={args.n_components}, k=8, "
              + ("on a running Prefect server" if server else
                 "embedded default (starts a server)")
              + (f"; S3: SeaweedFS at {s3.endpoint_url}" if s3 else ""))
        if args.vs:
            print(f"this: {sys.executable}; vs: {args.vs}")
        columns = [(store, which) for store in stores for which in pythons]
        name = {c: c[0] if len(pythons) == 1 else
                (f"{c[1]}" if len(stores) == 1 else f"{c[0]} {c[1]}") for c in columns}
        runs = {name[c]: [] for c in columns}
        for r in range(args.repeats):
            for store, which in columns:
                root = roots[store]
                out = f"{root}/out-{r}-{which}"
                params = {"input": f"{root}/data", "output_dir": out, "id_column": "row_id",
                          "feature_columns": [f"x{j}" for j in range(10)], "n_clusters": 8,
                          "gamma": 0.1, "n_components": args.n_components, "random_state": 0,
                          "block_size": args.block_size}
                if store == "local":  # a kept --workdir must not make the run resume
                    shutil.rmtree(out, ignore_errors=True)
                run = run_once(params, env, pythons[which], cwd=str(work))
                if run["code"] == 0:
                    filesystem = fs if store == "s3" else None
                    path = out.removeprefix("s3://") + "/labels"
                    labels = pq.read_table(path, columns=["label"], filesystem=filesystem)
                    run["ari"] = adjusted_rand_score(truth, labels.column("label").to_numpy())
                runs[name[(store, which)]].append(run)
                if args.repeats > 1 or len(columns) > 1:
                    print(f"run {r + 1:>3} {name[(store, which)]:<9}: " + (
                        f"completed in {run['wall']:6.1f} s, peak {run['peak'] / 2**30:.2f} "
                        f"GiB (flow process {run['own'] / 2**30:.2f} GiB), ARI {run['ari']:.4f}"
                        if run["code"] == 0 else
                        f"FAILED after {run['wall']:.1f} s: {run['error']}"), flush=True)
    finally:
        if server is not None:
            server.stop()
        if s3 is not None:
            s3.stop()
    return _report(runs, np)


def _start_s3(rows: int, env: dict):
    """SeaweedFS sized for the data, checkpoints and outputs (~130 bytes a row), and an s3fs
    filesystem on it; the flow's processes get the standard AWS variables."""
    import s3fs

    from tests.s3 import SeaweedS3

    volumes = max(16, int(rows * 130 / 2**20 / 64) + 8)  # 64 MB volumes
    s3 = SeaweedS3(bucket="spectral-scale", volumes=volumes).start()
    env.update(s3.env())
    fs = s3fs.S3FileSystem(key=s3.access_key, secret=s3.secret_key,
                           client_kwargs={"endpoint_url": s3.endpoint_url,
                                          "region_name": s3.region})
    return s3, fs


def _report(runs: dict[str, list[dict]], np) -> int:
    stores = list(runs)
    done = {store: [r for r in runs[store] if r["code"] == 0] for store in stores}
    if not all(done.values()):
        print("every run failed on: " + ", ".join(s for s in stores if not done[s]),
              file=sys.stderr)
        return 1
    print("\n" + "; ".join(f"{store}: {len(done[store])} of {len(runs[store])} runs completed"
                           for store in stores) + "; medians over the completed runs")
    print(f"{'stage':<28}" + "".join(f"{store:>12}" for store in stores)
          + ("  ratio" if len(stores) == 2 else ""))

    def row(name: str, values: list[float], unit: str = "") -> None:
        ratio = f"  {values[1] / values[0]:5.2f}×" if len(values) == 2 and values[0] else ""
        print(f"{name:<28}" + "".join(f"{v:>11.2f}{unit or ' '}" for v in values) + ratio)

    for stage in done[stores[0]][0]["result"]["stages"]:
        row(stage, [float(np.median([r["result"]["stages"][stage]["seconds"]
                                     for r in done[s]])) for s in stores], "s")
    row("whole flow (wall)", [float(np.median([r["wall"] for r in done[s]]))
                              for s in stores], "s")
    row("peak RSS, process tree", [max(r["peak"] for r in done[s]) / 2**30 for s in stores], "G")
    row("peak RSS, flow process", [max(r["own"] for r in done[s]) / 2**30 for s in stores], "G")
    row("ARI (lowest)", [min(r["ari"] for r in done[s]) for s in stores])
    return 0 if all(len(done[s]) == len(runs[s]) for s in stores) else 1


if __name__ == "__main__":
    sys.exit(main())
