"""Shared fixtures. Data sets are made here or loaded from scikit-learn (no downloads)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def three_blobs():
    """Three well-separated Gaussian blobs with known labels, (600, 4)."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(600, n_features=4, centers=3, cluster_std=0.6, random_state=3)
    return X, y


@pytest.fixture(scope="session")
def small_groups():
    """120 points in three groups, small enough for a dense n×n reference."""
    rng = np.random.RandomState(0)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    X = np.vstack([rng.randn(40, 3) + c for c in centres])
    return X
