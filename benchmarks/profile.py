"""Where the library's time goes, against the floor, and a cost model built from measurements.

    .venv/bin/python benchmarks/profile.py [--n 1000000] [--m 100,500] [--dtype float32]
                                           [--predict-rows 100000000 --workers 10 --cores 8]

1. Machine constants, measured here on one thread: ns per rbf kernel value (the fused GEMM,
   clip and ``exp``), GFLOP/s of the float64 syrk that accumulates the Gram, ns per byte to
   page fresh memory in.
2. For each m: the floor -- one kernel pass over all n rows (Cᵀ1 and nothing else) on all
   cores -- then each stage of a ``SpectralClustering.fit`` (after a warm-up fit in the same
   process, so imports and first-use costs are not counted), in seconds and as a multiple of
   the floor, next to what the cost model predicts for it.
3. The cost model's prediction for ``--predict-rows`` rows on a cluster of ``--workers`` ×
   ``--cores``, where the flow evaluates the kernel in each of its three passes (no cache
   across tasks) and reads Parquet three times.

The model (P cores, rbf, dense C; c_k = s per kernel value, R = syrk FLOP/s, f = s per byte
paged in, b = C's bytes per value):

    kernel_blocks  pass 1: n·m·c_k/P + f·n·m·b/P (C kept)   pass 2: (2·n·m²/R + n·m·c_s)/P
    eigendecompose O(m³) flops, ~0
    embed          n·m·c_s/P (C kept; else + n·m·c_k/P)
    assign_labels  KMeans on 100,000 rows + n·k² to label every row (~0.2 s, constant here)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


#: Measured on this machine (benchmarks/profile.md): decoding one million rows × 10 float32
#: features from Parquet on one core, the flow's assign_labels stage per million rows (reads
#: the embedding into one process, labels, writes labels.parquet), and the flow's fixed
#: start-up (local Prefect server, imports, Dask cluster, eight task runs).
PARQUET_S_PER_MROW = 0.08
ASSIGN_S_PER_MROW = 0.35
FLOW_FIXED_S = 16.0


def _best(f, repeats=3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def machine_constants(dtype) -> dict[str, float]:
    """Single-thread constants the model is built from."""
    from threadpoolctl import threadpool_limits

    from spectral_core._kernels import rbf_cross

    rng = np.random.RandomState(0)
    X = rng.randn(8192, 10).astype(dtype)
    L = X[:100].copy()
    out = np.empty((8192, 100), dtype=dtype)
    B = rng.rand(4096, 500)
    with threadpool_limits(1):
        c_k = _best(lambda: rbf_cross(X, L, 0.1, out=out), 10) / out.size
        syrk = 2 * 4096 * 500 * 500 / _best(lambda: B.T @ B, 5)
        C = rng.rand(8192, 100).astype(dtype)
        P = rng.rand(100, 8).astype(dtype)
        t = rng.rand(100).astype(dtype)
        c_s = _best(lambda: (C @ t, C * t[None, :], C @ P), 10) / C.size
    fault = _best(lambda: np.ones(256 * 2**20 // 8), 3) / (256 * 2**20)
    return {"c_k": c_k, "R": syrk, "c_s": c_s, "f": fault}


def model(n: int, m: int, k: int, itemsize: int, cores: int, c: dict[str, float],
          cached: bool = True) -> dict[str, float]:
    pass1 = n * m * c["c_k"] / cores + (c["f"] * n * m * itemsize / cores if cached else 0.0)
    pass2 = (2 * n * m * m / c["R"] + n * m * c["c_s"]) / cores
    if not cached:
        pass2 += n * m * c["c_k"] / cores
    embed = n * m * c["c_s"] / cores + (0.0 if cached else n * m * c["c_k"] / cores)
    return {"kernel_blocks": pass1 + pass2, "embed": embed, "assign_labels": 0.2,
            "floor": n * m * c["c_k"] / cores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--m", default="100,500")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--predict-rows", type=int, default=100_000_000)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--cores", type=int, default=8)
    args = parser.parse_args(argv)

    import os

    from sklearn.datasets import make_blobs
    from threadpoolctl import threadpool_limits

    from spectral_core import SpectralClustering, sample_landmarks
    from spectral_core._kernels import make_kernel
    from spectral_core._stages import block_column_sums, map_over_rows
    from spectral_core._utils import local_threads

    dtype = np.dtype(args.dtype)
    cores = os.cpu_count() or 1
    c = machine_constants(dtype)
    print(f"machine (1 thread, {dtype}): rbf kernel {c['c_k'] * 1e9:.2f} ns/value, "
          f"float64 syrk {c['R'] / 1e9:.1f} GFLOP/s, degree+scale+embed {c['c_s'] * 1e9:.2f} "
          f"ns/value, fresh memory {c['f'] * 1e9:.2f} ns/byte; {cores} cores")
    X, _ = make_blobs(args.n, n_features=10, centers=8, random_state=0)
    X = X.astype(dtype)
    kernel = make_kernel("rbf", gamma=0.1)
    header = f"{'m':>4} {'stage':<18} {'seconds':>8} {'× floor':>8} {'model s':>8}"
    print(header)
    print("-" * len(header))
    for m in map(int, args.m.split(",")):
        landmarks = sample_landmarks(X, m, random_state=0)
        with local_threads(cores), threadpool_limits(1, user_api="blas"):
            map_over_rows(lambda b, lm, kr: kr.cross(b[:1000], lm), X[:50_000], landmarks,
                          kernel)  # warm the pool
            floor = _best(lambda lm=landmarks: map_over_rows(block_column_sums, X, lm, kernel),
                          2)
        est = SpectralClustering(n_clusters=8, gamma=0.1, n_components=m, random_state=0,
                                 n_jobs=-1)
        est.fit(X[:100_000])  # warm-up: imports, thread pools, first-use costs
        start = time.perf_counter()
        est.fit(X)
        total = time.perf_counter() - start
        pred = model(args.n, m, 8, dtype.itemsize, cores, c)
        print(f"{m:>4} {'floor: 1 kernel pass':<18} {floor:8.2f} {1.0:8.1f} "
              f"{pred['floor']:8.2f}")
        for stage, seconds in est.stage_timings_.items():
            p = pred.get(stage)
            print(f"{m:>4} {stage:<18} {seconds:8.2f} {seconds / floor:8.1f} "
                  f"{'' if p is None else f'{p:8.2f}'}")
        other = total - sum(est.stage_timings_.values())
        print(f"{m:>4} {'validation etc.':<18} {other:8.2f} {other / floor:8.1f}")
        model_total = sum(v for key, v in pred.items() if key != "floor")
        print(f"{m:>4} {'fit total':<18} {total:8.2f} {total / floor:8.1f} {model_total:8.2f}")

    n, P = args.predict_rows, args.workers * args.cores
    print(f"\nprediction: the flow on {n:,} rows × 10, k=8, {args.workers} workers × "
          f"{args.cores} cores like these (kernel evaluated in all three passes):")
    for m in map(int, args.m.split(",")):
        pred = model(n, m, 8, dtype.itemsize, P, c, cached=False)
        read = 3 * n / 1e6 * PARQUET_S_PER_MROW / P
        assign = n / 1e6 * ASSIGN_S_PER_MROW
        total = pred["kernel_blocks"] + pred["embed"] + read + assign + FLOW_FIXED_S
        print(f"  m={m}: kernel_blocks {pred['kernel_blocks']:.0f} s + embed "
              f"{pred['embed']:.0f} s + Parquet reads {read:.0f} s + assign_labels (one "
              f"process) {assign:.0f} s + start-up {FLOW_FIXED_S:.0f} s ≈ {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
