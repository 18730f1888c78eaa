"""The report's embedding picture: which rows it draws and the plane it draws them on."""

import numpy as np
import pytest
from scipy.spatial import ConvexHull, QhullError

from spectral_core import SpectralClustering
from spectral_pipeline.tasks.report import allocate, cluster_plane


@pytest.mark.parametrize(("rows", "sizes"), [
    (2000, [1875] * 16),  # 30,000 rows in 16 blocks: the rounding used to give 2,001
    (2000, [65536, 65536, 4096, 17]),
    (2000, [3, 3, 3]),  # fewer rows than asked: all of them
    (2000, [1999, 1]),
    (0, [10, 10]),
])
def test_allocate_takes_exactly_what_the_title_says(rows, sizes):
    take = allocate(rows, sizes)
    assert sum(take) == min(rows, sum(sizes))
    assert all(0 <= t <= s for t, s in zip(take, sizes, strict=True))
    share = np.array(take) - min(rows, sum(sizes)) * np.array(sizes) / sum(sizes)
    assert np.all(np.abs(share) < 1)  # proportional, to within one row


def _hull(points):
    """The convex hull's corners; a cluster drawn as a point or a segment is its points."""
    try:
        return points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        return np.unique(points, axis=0)


def _disjoint(a, b):
    """Two convex polygons are disjoint iff one of their edges' normals separates them (for
    point-like clusters, the line between their centres)."""
    between = b.mean(axis=0) - a.mean(axis=0)
    if (a @ between).max() < (b @ between).min():
        return True
    for poly in (a, b):
        for i in range(len(poly)):
            edge = poly[(i + 1) % len(poly)] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            if not axis.any():
                continue
            if (a @ axis).max() < (b @ axis).min() or (b @ axis).max() < (a @ axis).min():
                return True
    return False


def _assert_apart(xy, labels):
    """Every two clusters' hulls are disjoint, and their centres at least 10 % of the
    picture's extent apart (two hulls can be disjoint and still be drawn as one dot)."""
    clusters = np.unique(labels)
    hulls = {c: _hull(xy[labels == c]) for c in clusters}
    centres = {c: xy[labels == c].mean(axis=0) for c in clusters}
    extent = np.ptp(xy, axis=0).max()
    for i, a in enumerate(clusters):
        for b in clusters[i + 1:]:
            assert _disjoint(hulls[a], hulls[b]), (a, b)
            assert np.linalg.norm(centres[a] - centres[b]) >= 0.1 * extent, (a, b)


def test_four_exact_clusters_are_drawn_apart_where_principal_axes_stack_two():
    """The normalized embedding of four exact blobs: four tight points at the corners of a
    simplex. With two large clusters, the principal axes of the rows are theirs, and the two
    small clusters both land near the middle; the cluster plane keeps all four apart."""
    rng = np.random.default_rng(0)
    sizes = [800, 800, 200, 200]
    U = np.vstack([np.eye(4)[c] + 0.01 * rng.standard_normal((n, 4))
                   for c, n in enumerate(sizes)])
    labels = np.repeat(np.arange(4), sizes)
    # The premise: the rows' own principal axes stack clusters 2 and 3.
    centred = U - U.mean(axis=0)
    pca = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    gap = np.linalg.norm(pca[labels == 2].mean(0) - pca[labels == 3].mean(0))
    assert gap < 0.05 * np.ptp(pca, axis=0).max()
    _assert_apart(cluster_plane(U, labels), labels)


@pytest.mark.parametrize("k", [3, 4, 5, 7, 8])
def test_separated_blobs_are_drawn_apart(k):
    """Exact blobs through the library, 2,000 sampled rows of the embedding, as the report
    draws them: no two clusters' hulls overlap."""
    from sklearn.datasets import make_blobs
    from sklearn.metrics import adjusted_rand_score

    X, y = make_blobs(20_000, n_features=6, centers=k, cluster_std=0.7, center_box=(-20, 20),
                      random_state=k)
    sc = SpectralClustering(n_clusters=k, gamma=0.1, n_components=100, random_state=0,
                            persist_embedding=True).fit(X)
    assert adjusted_rand_score(y, sc.labels_) == pytest.approx(1.0)
    rows = np.sort(np.random.default_rng(0).choice(len(X), 2000, replace=False))
    _assert_apart(cluster_plane(sc.embedding_[rows], sc.labels_[rows]), sc.labels_[rows])


def test_one_cluster_and_unassigned_rows_are_drawn():
    U = np.random.default_rng(1).normal(size=(50, 3))
    labels = np.zeros(50, dtype=int)
    labels[:5] = -1  # an assigner's noise label
    xy = cluster_plane(U, labels)
    assert xy.shape == (50, 2) and np.all(np.isfinite(xy))
    assert cluster_plane(np.zeros((0, 3)), np.zeros(0, dtype=int)).shape == (0, 2)
