"""Speed and memory of spectral_core against dask-ml (and exact scikit-learn at small n).

    .venv/bin/pip install -q -e '.[benchmarks]'
    .venv/bin/python benchmarks/speed.py [--repeats 3] [--sizes 100000,1000000] [--m 100,500]
                                         [--dtypes float32,float64] [--slow-repeats 1]
                                         [--daskml-python /path/to/venv-with-dask-ml/bin/python]

Each fit is the first fit in a fresh subprocess that has just built its array, as a user's
process has (``make_blobs`` with a fixed seed, so every system gets the same data; its peak RSS
is its own; the library's imports are done and timed before the clock starts), systems
alternating run by run. ``--data file`` loads the array from a ``.npz`` file written once
instead, as an earlier version of this script did: the two can differ where the fit's first
touch of fresh memory depends on what the process touched before (see benchmarks/profile.md).
The table gives the median seconds of the fit (and of the import, and the process's CPU seconds
during the fit), the largest peak RSS, the ARI against the generating labels, and each system's
time relative to spectral_core's. The machine header (CPU flags, BLAS, numpy) and the load
average before the table say what the numbers were measured on: on a shared machine, compare
rows measured together, not across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SYSTEMS = {
    "spectral_core": "spectral_core (n_jobs=-1)",
    "spectral_core_kmeans": "spectral_core landmarks='kmeans'",
    "daskml_fast": "dask-ml persist+sklearn-kmeans",
    "daskml_default": "dask-ml persist+dask KMeans",
    "sklearn_exact": "scikit-learn exact rbf",
}

_CHILD = r"""
import json, sys, time
import numpy as np
from sklearn.metrics import adjusted_rand_score
system, source, m, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if source.endswith(".npz"):
    data = np.load(source)
    X, y = data["X"].astype(dtype), data["y"]
else:
    from sklearn.datasets import make_blobs
    X, y = make_blobs(int(source), n_features=10, centers=8, random_state=0)
    X = X.astype(dtype, copy=False)
# Imports are outside the timed region (they are a once-per-process cost for any library),
# and timed on their own.
import_start = time.perf_counter()
if system.startswith("spectral_core"):
    from spectral_core import SpectralClustering
elif system.startswith("daskml"):
    import dask.array as da
    from dask_ml.cluster import SpectralClustering
else:
    from sklearn.cluster import SpectralClustering
import_seconds = time.perf_counter() - import_start
extra = {}
start, cpu_start = time.perf_counter(), time.process_time()
if system.startswith("spectral_core"):
    lm = "kmeans" if system.endswith("kmeans") else "random"
    est = SpectralClustering(n_clusters=8, gamma=0.1, n_components=m, random_state=0,
                             n_jobs=-1, landmarks=lm).fit(X)
    labels = est.labels_
    extra = {"stages": est.stage_timings_}
elif system.startswith("daskml"):
    kw = {"assign_labels": "sklearn-kmeans"} if system == "daskml_fast" else {}
    Xd = da.from_array(X, chunks=(max(10_000, X.shape[0] // 16), X.shape[1]))
    labels = SpectralClustering(n_clusters=8, gamma=0.1, n_components=m, random_state=0,
                                persist_embedding=True, **kw).fit(Xd).labels_
    labels = np.asarray(labels.compute() if hasattr(labels, "compute") else labels)
else:
    labels = SpectralClustering(n_clusters=8, gamma=0.1, random_state=0).fit(X).labels_
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
if system.startswith("spectral_core"):  # which route the cost model chose (probes cached)
    from spectral_core._blocks import local_threads
    from spectral_core._kernel_blocks import choose_cache_budget
    with local_threads(2):
        extra["kept_C"] = choose_cache_budget(X, est._landmark_set, est._kernel) > 0
import resource
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process's peak
print(json.dumps({"seconds": seconds, "cpu": cpu, "import": import_seconds,
                  "ari": adjusted_rand_score(y, labels), "rss_mb": rss_mb, **extra}))
"""


def run_child(system: str, source: str, m: int, dtype: str, python: dict[str, str]) -> dict:
    """One fit in a fresh interpreter (threads only, so its own peak RSS is the whole);
    ``source`` is a row count to generate, or a ``.npz`` file to load."""
    exe = python["daskml"] if system.startswith("daskml") else sys.executable
    # From a neutral folder: `python -c` puts the working directory first on sys.path, where
    # a checkout's spectral_core would shadow the one installed for `exe`.
    out = subprocess.run([exe, "-c", _CHILD, system, source, str(m), dtype],
                         cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1,
                        help="runs of dask-ml's default KMeans (minutes each at 1M rows)")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--m", default="100,500")
    parser.add_argument("--systems", default="spectral_core,daskml_fast",
                        help="also: spectral_core_kmeans, daskml_default (minutes per fit)")
    parser.add_argument("--kmeans-sizes", default="1000000",
                        help="sizes at which spectral_core_kmeans is added to the systems")
    parser.add_argument("--small", action=argparse.BooleanOptionalAction, default=True,
                        help="the 10,000-row row against exact scikit-learn")
    parser.add_argument("--daskml-python", default=sys.executable,
                        help="interpreter with dask-ml installed (with this checkout on "
                             "PYTHONPATH, so both systems see the same spectral_core)")
    parser.add_argument("--dtypes", default="float32,float64",
                        help="the data's dtype; both systems get the same array")
    parser.add_argument("--data", choices=("process", "file"), default="process",
                        help="build the array in the fitting process (what a user's process "
                             "does), or load it from a .npz file written once")
    args = parser.parse_args(argv)
    import os

    from sklearn.datasets import make_blobs

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe

    python = {"daskml": args.daskml_python}
    cases = [(n, m, dt) for n in map(int, args.sizes.split(","))
             for m in map(int, args.m.split(",")) for dt in args.dtypes.split(",")]
    if args.small:
        cases.append((10_000, 100, "float64"))
    kmeans_sizes = {int(v) for v in args.kmeans_sizes.split(",") if v}
    print(describe())
    print("data: " + ("built in each fitting process" if args.data == "process"
                      else "loaded from a .npz file"))
    print(f"load average at start (1, 5, 15 min): {os.getloadavg()}; "
          f"repeats {args.repeats}, systems alternating run by run")
    header = (f"{'n':>9} {'m':>4} {'dtype':>7} {'system':<32} {'median s':>9} {'cpu s':>6} "
              f"{'import s':>8} {'peak RSS MB':>12} {'ARI':>6} {'× ours':>7} {'kept C':>6} "
              f"{'load':>5}")
    print(header)
    print("-" * len(header), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n, m, dtype in cases:
            source = str(n)
            if args.data == "file":
                X, y = make_blobs(n, n_features=10, centers=8, random_state=0)
                source = str(Path(tmp) / f"blobs-{n}.npz")
                np.savez(source, X=X, y=y)
                del X, y
            systems = (["spectral_core", "sklearn_exact"] if n == 10_000
                       else args.systems.split(","))
            if n in kmeans_sizes and n != 10_000 and "spectral_core_kmeans" not in systems:
                systems.append("spectral_core_kmeans")
            results: dict[str, list[dict]] = {s: [] for s in systems}
            load = os.getloadavg()[0]
            for i in range(args.repeats):
                for s in systems:  # alternate systems run by run
                    if s == "daskml_default" and i >= args.slow_repeats:
                        continue
                    results[s].append(run_child(s, source, m, dtype, python))
            base = statistics.median(r["seconds"] for r in results["spectral_core"])
            for s in systems:
                rs = results[s]
                secs = statistics.median(r["seconds"] for r in rs)
                cpu = statistics.median(r["cpu"] for r in rs)
                imp = statistics.median(r["import"] for r in rs)
                rss = max(r["rss_mb"] for r in rs)
                ari = statistics.mean(r["ari"] for r in rs)
                kept = ",".join(sorted({str(r["kept_C"])[0] for r in rs})) if "kept_C" in rs[0] \
                    else "-"
                print(f"{n:>9} {m:>4} {dtype:>7} {SYSTEMS[s]:<32} {secs:9.2f} {cpu:6.2f} "
                      f"{imp:8.2f} {rss:12.0f} {ari:6.3f} {secs / base:7.1f} {kept:>6} "
                      f"{load:5.1f}", flush=True)
                for r in rs:  # every run, for the record (medians hide the spread)
                    stages = " ".join(f"{k}={v:.2f}" for k, v in r.get("stages", {}).items())
                    print(f"{'':>23} run {r['seconds']:6.2f} s  cpu {r['cpu']:5.2f}  {stages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
