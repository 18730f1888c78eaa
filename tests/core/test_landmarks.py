"""Landmark selection reads a number of rows that does not grow with n."""

import numpy as np
import pytest

from spectral_core import sample_landmarks
from spectral_core._landmarks import KMEANS_LANDMARK_MAX_SAMPLE, landmark_sample_size


class BillionRows:
    """A (10⁹, 3) array that only materialises the rows asked for, and records them."""

    shape = (10**9, 3)
    ndim = 2

    def __init__(self):
        self.taken = []

    def __getitem__(self, indices):
        indices = np.asarray(indices)
        self.taken.append(indices)
        # Rows are a deterministic function of their index: three well separated groups.
        rng = np.random.default_rng(indices % 7919)
        return (indices % 3)[:, None] * 10.0 + rng.random((indices.size, 3))


@pytest.mark.parametrize(("m", "expected"), [(50, 5_000), (1_500, KMEANS_LANDMARK_MAX_SAMPLE)])
def test_kmeans_landmarks_read_a_capped_sample(m, expected):
    X = BillionRows()
    landmarks = sample_landmarks(X, m, method="kmeans", random_state=0)
    assert [t.size for t in X.taken] == [expected] == [landmark_sample_size(X.shape[0], m)]
    taken = X.taken[0]
    assert np.all(np.diff(taken) > 0) and taken[-1] < X.shape[0]  # distinct rows, in order
    assert landmarks.points.shape == (m, 3) and landmarks.indices is None
    # The centres sit in the three groups the rows come from, not between them.
    group = np.round(landmarks.points[:, 0] / 10.0)
    assert set(group.tolist()) == {0.0, 1.0, 2.0}
    assert np.all(np.abs(landmarks.points[:, 0] - 10.0 * group - 0.5) < 0.5)


def test_random_landmarks_read_only_the_landmark_rows():
    X = BillionRows()
    landmarks = sample_landmarks(X, 100, random_state=0)
    assert [t.size for t in X.taken] == [100]
    np.testing.assert_array_equal(landmarks.indices, X.taken[0])
    assert np.unique(landmarks.indices).size == 100


def test_sample_size_rule():
    # ~100 rows per landmark, at least 10 per landmark, never more than n or the cap.
    assert landmark_sample_size(10**6, 500) == 50_000
    assert landmark_sample_size(20_000, 500) == 20_000
    assert landmark_sample_size(10**9, 10_000) == 100_000
    assert landmark_sample_size(10**9, 20_000) == 200_000  # 10·m rows to seed from


def test_kmeans_centres_overwrite_the_sample_only_when_told():
    """The k-means centres its sample in place only under ``overwrite_sample`` (what
    sample_landmarks passes for the copy it made); the centres are the same either way."""
    from spectral_core._landmarks import _kmeans_centres

    X = (np.random.default_rng(0).normal(size=(2_000, 4)) + 50).astype(np.float32)
    kept = X.copy()
    centres = _kmeans_centres(X, 20, np.random.default_rng(1))
    np.testing.assert_array_equal(X, kept)
    overwritten = _kmeans_centres(X, 20, np.random.default_rng(1), overwrite_sample=True)
    assert not np.array_equal(X, kept)  # centred in place
    np.testing.assert_array_equal(overwritten, centres)
    before = kept.copy()
    sample_landmarks(kept, 20, method="kmeans", random_state=0)  # overwrites its own copy
    np.testing.assert_array_equal(kept, before)
