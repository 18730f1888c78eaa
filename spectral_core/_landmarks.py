"""Stage ``sample_landmarks``: the m = ``n_components`` points the Nyström method is built on."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from sklearn.utils import check_random_state

#: Landmark sample size for ``landmarks='kmeans'``, as a multiple of ``n_components``.
KMEANS_LANDMARK_SAMPLE = 10
#: Lloyd iterations for ``landmarks='kmeans'``: a cheap refinement, not a converged k-means.
KMEANS_LANDMARK_ITER = 20


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
        centres of a short k-means with m clusters on a uniform sample of ~10·m rows (the
        "hybrid" selection of U-SPEC, Huang et al. 2020): better landmarks at a cost that
        does not grow with n.
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
    if method == "random":
        indices = np.sort(rng.choice(n, size=n_components, replace=False))
        rows = _take_rows(X, indices)
        points = rows[:, indices] if precomputed else rows
        return Landmarks(points=np.ascontiguousarray(points), indices=indices)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        size = min(n, KMEANS_LANDMARK_SAMPLE * n_components)
        sample = _take_rows(X, np.sort(rng.choice(n, size=size, replace=False)))
        km = KMeans(
            n_clusters=n_components,
            n_init=1,
            max_iter=KMEANS_LANDMARK_ITER,
            random_state=rng.randint(np.iinfo(np.int32).max),
        )
        with warnings.catch_warnings():
            # A short run is the point: not converging in KMEANS_LANDMARK_ITER is expected.
            warnings.simplefilter("ignore")
            km.fit(sample)
        centres = km.cluster_centers_.astype(sample.dtype, copy=False)
        return Landmarks(points=np.ascontiguousarray(centres), indices=None)
    raise ValueError(f"Unknown landmark method {method!r}; expected 'random' or 'kmeans'.")


def _take_rows(X: Any, indices: np.ndarray) -> np.ndarray:
    rows = X[indices]
    if isinstance(rows, da.Array):
        rows = rows.compute()
    return np.asarray(rows)
