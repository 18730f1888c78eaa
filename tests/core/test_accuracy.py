"""Adjusted Rand index against known labels."""

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_circles, make_moons
from sklearn.metrics import adjusted_rand_score

from spectral_core import SpectralClustering


def test_blobs_rbf(three_blobs):
    X, y = three_blobs
    labels = SpectralClustering(n_clusters=3, gamma=0.1, random_state=0).fit(X).labels_
    assert adjusted_rand_score(y, labels) >= 0.99


@pytest.mark.parametrize("landmarks", ["random", "kmeans"])
@pytest.mark.parametrize(
    "make", [lambda: make_moons(2000, noise=0.05, random_state=0),
             lambda: make_circles(2000, noise=0.05, factor=0.5, random_state=0)],
    ids=["moons", "circles"],
)
def test_nearest_neighbors_on_non_convex_shapes(make, landmarks):
    X, y = make()
    sc = SpectralClustering(n_clusters=2, affinity="nearest_neighbors", n_neighbors=5,
                            n_components=200, landmarks=landmarks, random_state=0)
    assert adjusted_rand_score(y, sc.fit(X).labels_) >= 0.95


def test_rbf_fails_where_the_graph_succeeds():
    """The ARI thresholds above are not trivially met: a global rbf cannot split circles."""
    X, y = make_circles(2000, noise=0.05, factor=0.5, random_state=0)
    labels = SpectralClustering(n_clusters=2, gamma=0.1, random_state=0).fit(X).labels_
    assert adjusted_rand_score(y, labels) < 0.5


@pytest.mark.parametrize("landmarks", ["random", "kmeans"])
def test_digits_nearest_neighbors(landmarks):
    X, y = load_digits(return_X_y=True)
    sc = SpectralClustering(n_clusters=10, affinity="nearest_neighbors", n_neighbors=5,
                            n_components=300, landmarks=landmarks, random_state=0)
    # Seeds 0-4 measured 0.765-0.786 (random) and 0.771-0.898 (kmeans); the previous design
    # (top-k embedding, one KMeans start, landmarks fitted on 10·m rows) gave 0.722 for
    # random landmarks at seed 0.
    assert adjusted_rand_score(y, sc.fit(X).labels_) >= 0.75


@pytest.mark.parametrize("assign", ["discretize", "cluster_qr", "sklearn-kmeans"])
def test_other_assignments_recover_blobs(three_blobs, assign):
    X, y = three_blobs
    sc = SpectralClustering(n_clusters=3, gamma=0.1, assign_labels=assign, random_state=0)
    assert adjusted_rand_score(y, sc.fit(X).labels_) >= 0.99
    # Their predict labels the training rows as fit did.
    assert np.mean(sc.predict(X) == sc.labels_) >= 0.999


@pytest.mark.parametrize("assign", ["discretize", "cluster_qr"])
def test_rotation_assigners_use_n_clusters_on_a_wider_embedding(three_blobs, assign):
    """The k-NN graph's embedding has n_clusters + 2 columns: the rotations still give k."""
    X, y = three_blobs
    sc = SpectralClustering(n_clusters=3, affinity="nearest_neighbors", n_neighbors=5,
                            n_components=50, assign_labels=assign, persist_embedding=True,
                            random_state=0).fit(X)
    assert sc.embedding_.shape[1] == 5
    assert adjusted_rand_score(y, sc.labels_) >= 0.99
    assert np.unique(sc.labels_).size == 3
    assert sc.assign_labels_.rotation_.shape == (5, 3)
