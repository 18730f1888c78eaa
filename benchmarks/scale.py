"""The whole flow on a large Parquet dataset: wall time per stage and peak memory.

    .venv/bin/pip install -q -e '.[benchmarks]'
    .venv/bin/python benchmarks/scale.py [--rows 10000000] [--rows-per-file 500000]
                                         [--running-server] [--repeats 10]

Writes ``--rows`` × 10 float32 features (8 Gaussian blobs) as many Parquet files, runs the
``spectral-clustering`` flow on them in a fresh process (embedded default: the process starts a
local Prefect server and a local Dask cluster; with ``--running-server``, against a Prefect
server started beforehand and not timed, as a deployment's runs are) and samples, every 0.2 s,
the summed RSS of that process and all its children (the flow process, Dask workers, the
Prefect server it started). Prints one table: seconds per stage, total wall time, peak summed
RSS, ARI against the generating labels. With ``--repeats N`` the flow runs N times on the same
data (each run in a fresh process and a fresh output directory, so nothing resumes), one line
per run with its outcome; the exit code is non-zero unless every run completed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

_RUN = r"""
import json, sys
from flows.cli import run_flow
from flows.params import SpectralParams
params = SpectralParams(**json.loads(sys.argv[1]))
print("RESULT " + json.dumps(run_flow(params, quiet=True)))
"""


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_once(params: dict, env: dict) -> dict:
    """One flow run in a fresh process: wall time, peak summed RSS, its result or its error."""
    proc = subprocess.Popen([sys.executable, "-c", _RUN, json.dumps(params)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps, peak, stop = psutil.Process(proc.pid), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(ps))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    run = {"wall": wall, "peak": peak[0], "code": proc.returncode}
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
    args = parser.parse_args(argv)

    here = Path(__file__).resolve()
    sys.path.insert(0, str(here.parents[1]))
    sys.path.insert(0, str(here.parent))
    import numpy as np
    import pyarrow.parquet as pq
    from machine import describe
    from sklearn.metrics import adjusted_rand_score

    from flows.cli import write_blobs

    work = Path(args.workdir or tempfile.mkdtemp(prefix="spectral-scale-"))
    start = time.perf_counter()
    data, truth = write_blobs(work / "data", args.rows, rows_per_file=args.rows_per_file)
    gen_seconds = time.perf_counter() - start
    env = dict(os.environ)
    server = None
    if args.running_server:
        from flows.server import LocalServer

        server = LocalServer().start()
        env["PREFECT_API_URL"] = server.url
    print(describe())
    print(f"{args.rows:,} rows × 10 features in {len(list(data.glob('*.parquet')))} files "
          f"(written in {gen_seconds:.0f} s), m={args.n_components}, k=8, "
          + ("on a running Prefect server" if server else "embedded default (starts a server)"))
    runs = []
    try:
        for r in range(args.repeats):
            out = work / (f"out-{r}" if args.repeats > 1 else "out")
            params = {"input": str(data), "output_dir": str(out), "id_column": "row_id",
                      "feature_columns": [f"x{j}" for j in range(10)], "n_clusters": 8,
                      "gamma": 0.1, "n_components": args.n_components, "random_state": 0,
                      "block_size": args.block_size}
            run = run_once(params, env)
            if run["code"] == 0:
                labels = pq.read_table(out / "labels.parquet", columns=["label"])
                run["ari"] = adjusted_rand_score(truth, labels.column("label").to_numpy())
            runs.append(run)
            if args.repeats > 1:
                print(f"run {r + 1:>3}: " + (
                    f"completed in {run['wall']:6.1f} s, peak {run['peak'] / 2**30:.2f} GiB, "
                    f"ARI {run['ari']:.4f}" if run["code"] == 0 else
                    f"FAILED after {run['wall']:.1f} s: {run['error']}"), flush=True)
    finally:
        if server is not None:
            server.stop()
    done = [r for r in runs if r["code"] == 0]
    if not done:
        print("every run failed", file=sys.stderr)
        return 1
    stages = done[0]["result"]["stages"]
    print(f"\n{len(done)} of {len(runs)} runs completed; medians over the completed runs")
    print(f"{'stage':<18} {'seconds':>8}")
    for stage in stages:
        seconds = [r["result"]["stages"][stage]["seconds"] for r in done]
        print(f"{stage:<18} {np.median(seconds):8.2f}")
    print(f"{'whole flow (wall)':<18} {np.median([r['wall'] for r in done]):8.2f}")
    print(f"peak RSS, all processes summed: {max(r['peak'] for r in done) / 2**30:.2f} GiB")
    print(f"ARI: {min(r['ari'] for r in done):.4f} (lowest)")
    return 0 if len(done) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
