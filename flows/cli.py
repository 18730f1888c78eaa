"""``spectral-flow``: the command-line entry point."""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_digits
    from sklearn.metrics import adjusted_rand_score

    from spectral_core import SpectralClustering

    X, y = load_digits(return_X_y=True)
    start = time.perf_counter()
    sc = SpectralClustering(
        n_clusters=10, affinity="nearest_neighbors", n_neighbors=5, n_components=300,
        landmarks="kmeans", random_state=args.random_state,
    ).fit(X)
    print(f"digits: {X.shape[0]} rows, {X.shape[1]} features")
    print(f"ARI against the true digits: {adjusted_rand_score(y, sc.labels_):.3f}")
    print(f"seconds: {time.perf_counter() - start:.2f}")
    for stage, seconds in sc.stage_timings_.items():
        print(f"  {stage:<17} {seconds:7.3f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spectral-flow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="cluster scikit-learn's digits end to end")
    demo.add_argument("--random-state", type=int, default=0)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
