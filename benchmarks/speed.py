"""Speed and memory of spectral_core against dask-ml (and exact scikit-learn at small n).

    .venv/bin/pip install -q -e '.[benchmarks]'
    .venv/bin/python benchmarks/speed.py [--repeats 3] [--sizes 100000,1000000] [--m 100,500]
                                         [--dtypes float32,float64] [--slow-repeats 1]

Each fit runs in a fresh subprocess (so its peak RSS is its own; imports are done before the
clock starts), systems alternating run by run on the same data file; the table gives the median
seconds, the largest peak RSS and the ARI against the generating labels, and each system's time
relative to spectral_core's.
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
    "daskml_fast": "dask-ml persist+sklearn-kmeans",
    "daskml_default": "dask-ml persist+dask KMeans",
    "sklearn_exact": "scikit-learn exact rbf",
}

_CHILD = r"""
import json, sys, time
import numpy as np
from sklearn.metrics import adjusted_rand_score
system, path, m, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
data = np.load(path)
X, y = data["X"].astype(dtype), data["y"]
# Imports are outside the timed region (they are a once-per-process cost for any library).
if system == "spectral_core":
    from spectral_core import SpectralClustering
elif system.startswith("daskml"):
    import dask.array as da
    from dask_ml.cluster import SpectralClustering
else:
    from sklearn.cluster import SpectralClustering
start = time.perf_counter()
if system == "spectral_core":
    labels = SpectralClustering(n_clusters=8, gamma=0.1, n_components=m, random_state=0,
                                n_jobs=-1).fit(X).labels_
elif system.startswith("daskml"):
    kw = {"assign_labels": "sklearn-kmeans"} if system == "daskml_fast" else {}
    Xd = da.from_array(X, chunks=(max(10_000, X.shape[0] // 16), X.shape[1]))
    labels = SpectralClustering(n_clusters=8, gamma=0.1, n_components=m, random_state=0,
                                persist_embedding=True, **kw).fit(Xd).labels_
    labels = np.asarray(labels.compute() if hasattr(labels, "compute") else labels)
else:
    labels = SpectralClustering(n_clusters=8, gamma=0.1, random_state=0).fit(X).labels_
seconds = time.perf_counter() - start
import resource
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process's peak
print(json.dumps({"seconds": seconds, "ari": adjusted_rand_score(y, labels), "rss_mb": rss_mb}))
"""


def run_child(system: str, path: str, m: int, dtype: str) -> dict:
    """One fit in a fresh interpreter (threads only, so its own peak RSS is the whole)."""
    out = subprocess.run([sys.executable, "-c", _CHILD, system, path, str(m), dtype],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slow-repeats", type=int, default=1,
                        help="runs of dask-ml's default KMeans (minutes each at 1M rows)")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--m", default="100,500")
    parser.add_argument("--systems", default="spectral_core,daskml_fast,daskml_default")
    parser.add_argument("--dtypes", default="float32,float64",
                        help="the data's dtype; both systems get the same array")
    args = parser.parse_args(argv)
    from sklearn.datasets import make_blobs

    cases = [(n, m, dt) for n in map(int, args.sizes.split(","))
             for m in map(int, args.m.split(",")) for dt in args.dtypes.split(",")]
    cases.append((10_000, 100, "float64"))
    header = (f"{'n':>9} {'m':>4} {'dtype':>7} {'system':<32} {'median s':>9} "
              f"{'peak RSS MB':>12} {'ARI':>6} {'× ours':>7}")
    print(header)
    print("-" * len(header), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n, m, dtype in cases:
            X, y = make_blobs(n, n_features=10, centers=8, random_state=0)
            path = str(Path(tmp) / f"blobs-{n}.npz")
            np.savez(path, X=X, y=y)
            systems = (["spectral_core", "sklearn_exact"] if n == 10_000
                       else args.systems.split(","))
            results: dict[str, list[dict]] = {s: [] for s in systems}
            for i in range(args.repeats):
                for s in systems:  # alternate systems run by run
                    if s == "daskml_default" and i >= args.slow_repeats:
                        continue
                    results[s].append(run_child(s, path, m, dtype))
            base = statistics.median(r["seconds"] for r in results["spectral_core"])
            for s in systems:
                secs = statistics.median(r["seconds"] for r in results[s])
                rss = max(r["rss_mb"] for r in results[s])
                ari = statistics.mean(r["ari"] for r in results[s])
                print(f"{n:>9} {m:>4} {dtype:>7} {SYSTEMS[s]:<32} {secs:9.2f} "
                      f"{rss:12.0f} {ari:6.3f} "
                      f"{secs / base:7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
