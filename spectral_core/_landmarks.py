"""Stage ``sample_landmarks``: the m = ``n_components`` points the Nyström method is built on."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._utils import check_random_state, is_dask_array

#: Rows the ``landmarks='kmeans'`` Lloyd iterations run on, per landmark: with ~10 rows per
#: landmark many landmarks end up nearly empty; MNIST ARI rises with rows per landmark up to
#: ~100 (measured: benchmarks/accuracy.md).
KMEANS_LANDMARK_ROWS_PER_CENTRE = 100
#: Absolute cap on those rows, so the fit's cost does not grow with n (m = 1,000 reaches it).
KMEANS_LANDMARK_MAX_SAMPLE = 100_000
#: k-means++ seeding is serial and memory bound: it runs on this many rows per landmark,
#: drawn from the sample, and picks the rows that start Lloyd.
KMEANS_LANDMARK_SEED_ROWS_PER_CENTRE = 10
#: Wider rows are seeded on a Gaussian random projection to this many dimensions (pairwise
#: distances kept to ~±20 %, enough to spread the seeds).
KMEANS_LANDMARK_SEED_DIM = 64
#: Lloyd iterations: a cheap refinement, not a converged k-means (5 place the landmarks as
#: well as 20 once each landmark has ~100 rows).
KMEANS_LANDMARK_ITER = 5


def landmark_sample_size(n_samples: int, n_components: int) -> int:
    """Rows the ``landmarks='kmeans'`` fit runs on: min(n, 100·m, 100,000), at least 10·m.

    >>> landmark_sample_size(10**9, 500), landmark_sample_size(10**9, 5000)
    (50000, 100000)
    """
    per_centre = KMEANS_LANDMARK_ROWS_PER_CENTRE * n_components
    seed = KMEANS_LANDMARK_SEED_ROWS_PER_CENTRE * n_components
    return min(n_samples, max(seed, min(per_centre, KMEANS_LANDMARK_MAX_SAMPLE)))

@dataclass(frozen=True)
class Landmarks:
    """Landmarks used for the Nyström approximation.

    Attributes
    ----------
    points : ndarray of shape (m, d)
        The landmark points. For ``affinity='precomputed'`` this is W = X[I][:, I], (m, m).
    indices : ndarray of shape (m,) or None
        Row indices of X the landmarks were taken from (sorted), or ``None`` when the
        landmarks are k-means centres rather than rows of X.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L = sample_landmarks(X, 30, random_state=0)
    >>> L.points.shape, L.n_landmarks, bool(np.array_equal(L.points, X[L.indices]))
    ((30, 2), 30, True)
    >>> sample_landmarks(X, 30, method="kmeans", random_state=0).indices is None
    True
    """

    points: np.ndarray
    indices: np.ndarray | None

    @property
    def n_landmarks(self) -> int:
        return int(self.points.shape[0])


def sample_landmarks(
    X: Any,
    n_components: int,
    *,
    method: str = "random",
    precomputed: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> Landmarks:
    """Choose the m = ``n_components`` landmarks.

    Parameters
    ----------
    X : ndarray or dask array of shape (n, d)
    n_components : int
        Number of landmarks, < n.
    method : {'random', 'kmeans'}
        ``'random'``: m distinct rows drawn uniformly (dask-ml's choice). ``'kmeans'``: the
        centres of a short k-means with m clusters (k-means++ seeds from 10·m rows, then 5
        Lloyd iterations) on a uniform sample of :func:`landmark_sample_size` rows, at most
        100,000 (the "hybrid" selection of U-SPEC, Huang et al. 2020): better landmarks at a
        cost that does not grow with n.
    precomputed : bool
        X is an (n, n) affinity; the landmark points become W = X[I][:, I].
    random_state : int, RandomState or None

    Returns
    -------
    Landmarks

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.RandomState(0).rand(50, 3)
    >>> sample_landmarks(X, 5, random_state=0).points.shape
    (5, 3)
    """
    rng = check_random_state(random_state)
    n = X.shape[0]
    # A Generator draws k of n without replacement in O(k) memory; RandomState.choice
    # permutes all n (800 MB of indices at n = 10⁸).
    gen = np.random.default_rng(rng.randint(np.iinfo(np.int32).max))
    if method == "random":
        indices = np.sort(gen.choice(n, size=n_components, replace=False))
        rows = _take_rows(X, indices)
        points = rows[:, indices] if precomputed else rows
        return Landmarks(points=np.ascontiguousarray(points), indices=indices)
    if method == "kmeans":
        size = landmark_sample_size(n, n_components)
        sample = _take_rows(X, np.sort(gen.choice(n, size=size, replace=False)))
        # The sample is a copy made here: the k-means may centre it in place.
        return Landmarks(points=_kmeans_centres(sample, n_components, gen,
                                                overwrite_sample=True), indices=None)
    raise ValueError(f"Unknown landmark method {method!r}; expected 'random' or 'kmeans'.")


def _take_rows(X: Any, indices: np.ndarray) -> np.ndarray:
    rows = X[indices]
    if is_dask_array(rows):
        rows = rows.compute()
    return np.asarray(rows)


def _kmeans_centres(sample: np.ndarray, m: int, gen: np.random.Generator, *,
                    overwrite_sample: bool = False) -> np.ndarray:
    """Centres of a short k-means on ``sample``, in the sample's dtype.

    The fit runs in float32 on the centred rows: half the cost of float64 GEMMs, and centring
    keeps ‖x‖² − 2x·c + ‖c‖² accurate for data far from the origin. ``overwrite_sample``
    (as SciPy's ``overwrite_a``): float32 rows may be centred in place, since a second
    sample-sized array costs the first touch of its pages (1.8 s of the MNIST fit at
    m = 1,000 here, a 70,000 × 784 sample).
    """
    from sklearn.cluster import KMeans, kmeans_plusplus

    dtype = sample.dtype
    mean = sample.mean(axis=0, dtype=np.float64)
    in_place = (overwrite_sample and dtype == np.float32 and sample.flags.writeable
                and sample.flags.c_contiguous)
    rows = sample if in_place else np.empty(sample.shape, dtype=np.float32)
    np.subtract(sample, mean, out=rows, casting="same_kind")
    size = rows.shape[0]
    seed_rows = rows[np.sort(gen.choice(size, size=min(size, KMEANS_LANDMARK_SEED_ROWS_PER_CENTRE
                                                          * m), replace=False))]
    seed_space = seed_rows
    if seed_rows.shape[1] > KMEANS_LANDMARK_SEED_DIM:
        projection = gen.standard_normal((seed_rows.shape[1], KMEANS_LANDMARK_SEED_DIM))
        seed_space = seed_rows @ (projection / np.sqrt(KMEANS_LANDMARK_SEED_DIM)).astype(np.float32)
    # Seeded in float64 (at most 10·m × 64 values): scikit-learn's k-means++ computes float32
    # distances in upcast chunks, one call per seed, which made it 3× slower (MNIST, m = 1,000:
    # 1.2 s against 0.4 s for 1,000 picks). The rounding moves some picks, not the landmarks'
    # quality (benchmarks/accuracy.md, session 9).
    seed_space = np.asarray(seed_space, dtype=np.float64)
    with warnings.catch_warnings():
        # A short run is the point: not converging in KMEANS_LANDMARK_ITER is expected, and
        # duplicate rows may leave fewer distinct seeds than m.
        warnings.simplefilter("ignore")
        _, picked = kmeans_plusplus(seed_space, m, random_state=int(gen.integers(2**31 - 1)))
        # tol=0: stop at KMEANS_LANDMARK_ITER or when no label changes, without the variance
        # of every column that a tolerance needs (a pass and two sample-sized temporaries);
        # copy_x=False: ``rows`` is already this function's own centred copy. On MNIST at
        # m = 1,000 (a 70,000 × 784 sample) the two cost 6 s of a 15 s fit here, most of it
        # the first touch of the temporaries' fresh pages; the labels are the same.
        km = KMeans(n_clusters=m, init=seed_rows[picked], n_init=1,
                    max_iter=KMEANS_LANDMARK_ITER, tol=0.0, copy_x=False).fit(rows)
    return np.ascontiguousarray((km.cluster_centers_.astype(np.float64) + mean).astype(dtype))
