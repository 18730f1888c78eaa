"""Where the library's time goes, against the floor, and a cost model built from measurements.

    .venv/bin/python benchmarks/profile.py [--n 1000000] [--m 100,500] [--dtype float32]
                                           [--predict-rows 100000000 --workers 10 --cores 8]

1. The cost model's constants, measured on 200,000 rows with all cores: seconds per kernel
   value, the pass-2 costs per value and per value·m (the float64 Gram syrk), the embedding
   from kept C, and paging fresh memory in.
2. For each m: the floor -- one kernel pass over all n rows (Cᵀ1 and nothing else) on all
   cores -- then each stage of a ``SpectralClustering.fit`` (after a warm-up fit in the same
   process, so imports and first-use costs are not counted), in seconds and as a multiple of
   the floor, next to what the cost model predicts for it from the 200,000-row constants.
3. The cost model's prediction for ``--predict-rows`` rows on a cluster of ``--workers`` ×
   ``--cores``, where the flow evaluates the kernel in each of its three passes (no cache
   across tasks) and reads Parquet three times.

The model (P cores, rbf, dense C of itemsize w; constants per core):

    kernel_blocks  pass 1: n·m·c_k/P + f·n·m·w (C kept)   pass 2: (a·n·m + b·n·m²)/P
    eigendecompose O(m³) flops, ~0
    embed          n·m·c_e/P (C kept; else + n·m·c_k/P)
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


def _best(f, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def machine_constants(X: np.ndarray, cores: int) -> dict[str, float]:
    """Constants of the cost model, measured on 200,000 rows with all cores (so they include
    the machine's real parallel efficiency and memory traffic, not single-thread peaks).

    c_k: seconds per kernel value (one pass: fused rbf + column sums), times cores.
    a, b: pass 2 costs a·n·m + b·n·m² (degrees and scaling; the float64 Gram syrk), times
          cores, solved from m = 100 and m = 400.
    c_e: seconds per value of the embedding pass from kept C, times cores.
    f: seconds per byte of fresh memory (the kept C is paged in once).
    """
    from threadpoolctl import threadpool_limits

    from spectral_core import sample_landmarks
    from spectral_core._blocks import local_threads, map_over_rows, map_threads
    from spectral_core._embed import _embedding_from_cross
    from spectral_core._kernel_blocks import _cross_and_sums, _gram_from_cross, block_column_sums
    from spectral_core._kernels import make_kernel

    Xs = X[:200_000]
    n = Xs.shape[0]
    kernel = make_kernel("rbf", gamma=0.1)
    per_m = {}
    with local_threads(cores), threadpool_limits(1, user_api="blas"):
        for m in (100, 400):
            lm = sample_landmarks(Xs, m, random_state=0)
            kern = _best(lambda lm=lm: map_over_rows(block_column_sums, Xs, lm, kernel), 3)
            blocks = [C for C, _ in map_over_rows(_cross_and_sums, Xs, lm, kernel)]
            t = np.full(m, 1.0 / m)
            S = np.eye(m)
            gram = _best(lambda b=blocks, t=t, S=S: map_threads(_gram_from_cross, b, t, 1e-12, S,
                                                                 False), 2)
            inv = [np.ones(len(b), dtype=b.dtype) for b in blocks]
            P = np.ones((m, 8))
            emb = _best(lambda b=blocks, i=inv, P=P: map_threads(_embedding_from_cross, b, i, P,
                                                                  True), 3)
            per_m[m] = (kern, gram, emb)
    (k1, g1, e1), (_, g2, _) = per_m[100], per_m[400]
    # g = a·n·m + b·n·m² at m = 100 and 400, solved for a and b.
    b = (g2 / 400 - g1 / 100) / (n * 300)
    a = g1 / (n * 100) - b * 100
    fault = _best(lambda: np.ones(256 * 2**20 // 8), 3) / (256 * 2**20)
    return {"c_k": k1 * cores / (n * 100), "a": max(a, 0.0) * cores, "b": b * cores,
            "c_e": e1 * cores / (n * 100), "f": fault}


def model(n: int, m: int, itemsize: int, cores: int, c: dict[str, float],
          cached: bool = True) -> dict[str, float]:
    """Seconds per stage for n rows, m landmarks, on ``cores`` cores like these."""
    kernel_pass = n * m * c["c_k"] / cores
    pass1 = kernel_pass + (c["f"] * n * m * itemsize if cached else 0.0)
    pass2 = (c["a"] * n * m + c["b"] * n * m * m) / cores + (0.0 if cached else kernel_pass)
    embed = n * m * c["c_e"] / cores + (0.0 if cached else kernel_pass)
    return {"kernel_blocks": pass1 + pass2, "embed": embed, "assign_labels": 0.2,
            "floor": kernel_pass}


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
    from spectral_core._blocks import local_threads, map_over_rows
    from spectral_core._kernel_blocks import block_column_sums
    from spectral_core._kernels import make_kernel

    dtype = np.dtype(args.dtype)
    cores = os.cpu_count() or 1
    X, _ = make_blobs(args.n, n_features=10, centers=8, random_state=0)
    X = X.astype(dtype)
    c = machine_constants(X, cores)
    print(f"model constants ({dtype}, measured on 200,000 rows, {cores} cores; per core): "
          f"kernel {c['c_k'] * 1e9:.2f} ns/value, pass 2 {c['a'] * 1e9:.2f} ns/value + "
          f"{c['b'] * 1e12:.2f} ps per value·m (Gram), embed {c['c_e'] * 1e9:.2f} ns/value, "
          f"fresh memory {c['f'] * 1e9:.2f} ns/byte")
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
        pred = model(args.n, m, dtype.itemsize, cores, c)
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
        pred = model(n, m, dtype.itemsize, P, c, cached=False)
        read = 3 * n / 1e6 * PARQUET_S_PER_MROW / P
        assign = n / 1e6 * ASSIGN_S_PER_MROW
        total = pred["kernel_blocks"] + pred["embed"] + read + assign + FLOW_FIXED_S
        print(f"  m={m}: kernel_blocks {pred['kernel_blocks']:.0f} s + embed "
              f"{pred['embed']:.0f} s + Parquet reads {read:.0f} s + assign_labels (one "
              f"process) {assign:.0f} s + start-up {FLOW_FIXED_S:.0f} s ≈ {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
