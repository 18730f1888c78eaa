"""How a block pass should hand its shared objects to the parts: broadcast, scatter, by value.

    .venv/bin/python benchmarks/scatter.py [--parts 60] [--passes 7]
                                           [--sizes 1000,300000,3000000,30000000]

A block pass runs one task per part on the Dask cluster, and every part needs the same few
objects (landmarks, plan, kernel, degree weights: a few hundred KB at m = 500). The pass runs
inside a task and reaches the cluster with ``worker_client()``, as ``tasks.parallel.fan_out``
does. Three ways to share an object, each timed as the median wall time of a pass of parts
that keep a core busy for ``--work-ms`` (0: the table is pure overhead), on the embedded
default (one worker with a thread per core) and on worker processes (one per core):

- broadcast: ``scatter(obj, broadcast=True, hash=False)`` once, then the parts;
- scatter:   ``scatter(obj, hash=False)`` to one worker, the others fetch it on demand;
- by value:  the object is an argument of every ``submit`` (pickled into every part's task).

The modes alternate pass by pass, so drift in the machine's speed is shared among them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

MODES = ("broadcast", "scatter", "by value")


def _part(i: int, obj: np.ndarray, work: float) -> float:
    """Reads the object, then keeps its core busy for ``work`` seconds (a block's compute)."""
    end = time.perf_counter() + work
    while time.perf_counter() < end:
        pass
    return float(obj[-1]) + i


def _one_pass(mode: str, obj: np.ndarray, parts: int, work: float) -> float:
    from distributed import wait, worker_client

    with worker_client() as client:
        start = time.perf_counter()
        if mode == "by value":
            futures = [client.submit(_part, i, obj, work, pure=False) for i in range(parts)]
        else:
            [shared] = client.scatter([obj], broadcast=mode == "broadcast", hash=False)
            futures = [client.submit(_part, i, shared, work, pure=False) for i in range(parts)]
        wait(futures)
        client.gather(futures)
        return time.perf_counter() - start


def _driver(sizes: list[int], parts: int, passes: int,
            work: float) -> dict[tuple[int, str], list[float]]:
    warnings.simplefilter("ignore")  # "large object in the task graph" is the point of by value
    times: dict[tuple[int, str], list[float]] = {}
    for size in sizes:
        rng = np.random.default_rng(size)
        for _ in range(passes):
            for mode in MODES:
                obj = rng.random(max(size // 8, 1))  # a new object each pass, as in a run
                times.setdefault((size, mode), []).append(_one_pass(mode, obj, parts, work))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=60)
    parser.add_argument("--passes", type=int, default=7)
    parser.add_argument("--sizes", default="1000,300000,3000000,30000000")
    parser.add_argument("--work-ms", type=float, default=0.0,
                        help="CPU time of each part (0: the table is pure overhead)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import os

    from distributed import Client, LocalCluster
    from machine import describe

    cores = os.cpu_count() or 1
    clusters = {
        f"threads (1 worker × {cores})": dict(n_workers=1, threads_per_worker=cores,
                                              processes=False),
        f"processes ({cores} workers × 1)": dict(n_workers=cores, threads_per_worker=1,
                                                 processes=True),
    }
    print(describe())
    print(f"median seconds per pass of {args.parts} parts of {args.work_ms:g} ms CPU each "
          f"({args.passes} passes per cell, modes alternating); the ideal is "
          f"{args.parts * args.work_ms / 1000 / cores:.3f} s\n")
    header = f"{'cluster':<24} {'object':>9} " + " ".join(f"{m:>10}" for m in MODES)
    print(header)
    print("-" * len(header))
    for name, kwargs in clusters.items():
        with LocalCluster(dashboard_address=None, **kwargs) as cluster, \
                Client(cluster) as client:
            client.submit(_driver, sizes[:1], 4, 1, 0.0, pure=False).result()  # warm up
            times = client.submit(_driver, sizes, args.parts, args.passes,
                                  args.work_ms / 1000, pure=False).result()
        for size in sizes:
            cells = " ".join(f"{statistics.median(times[(size, m)]):10.4f}" for m in MODES)
            print(f"{name:<24} {_bytes(size):>9} {cells}")
    return 0


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:g} {unit}"
        n /= 1000
    return f"{n:g} TB"


if __name__ == "__main__":
    sys.exit(main())
