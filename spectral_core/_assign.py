"""Stage 5: turning the spectral embedding into labels.

``'kmeans'`` is scikit-learn's KMeans. ``'discretize'`` (Yu & Shi 2003) and ``'cluster_qr'``
(Damle, Minden & Ying 2019) are the two rotation-based assignments scikit-learn's
SpectralClustering offers; they are implemented here as small estimators that keep their
rotation, so that new samples can be labelled with ``predict`` (scikit-learn's functions only
label the training rows).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state

from ._messages import ZeroEmbeddingWarning
from ._utils import is_dask_array

__all__ = ["ClusterQR", "Discretize", "assign_labels", "assignment_seed", "first_appearance_order",
           "first_rows", "fit_rows", "kmeans_n_init", "make_assigner", "order_by_first_row"]

#: The assigner (KMeans, discretize, cluster_qr, or any clusterer with ``predict``) is fitted
#: on a uniform sample of this many rows of the embedding when there are more, then every row
#: is labelled by ``predict``. The embedding is k-dimensional and its clusters are tight, so
#: 100,000 rows place k centres (or a k × k rotation) to well within the clusters' spread,
#: while a full fit on millions of rows costs more than all other stages together (measured in
#: benchmarks/profile.md). The pipeline draws the same sample from its embedding parts.
FIT_ROWS = 100_000


class ClusterQR(ClusterMixin, BaseEstimator):
    """Labels from a column-pivoted QR of the embedding (Damle, Minden & Ying 2019).

    The first k = ``n_clusters`` pivots of Uᵀ pick one representative sample per cluster; the
    orthogonal Procrustes map Q (w × k, orthonormal columns, for an embedding of w ≥ k
    columns) that takes those rows onto the coordinate axes is kept, and a sample u is
    labelled ``argmax |u Q|``.
    """

    def __init__(self, n_clusters: int = 8):
        self.n_clusters = n_clusters

    def fit(self, X, y=None):
        U = np.asarray(X, dtype=np.float64)
        k = _check_columns(U, self.n_clusters)
        _, _, piv = linalg.qr(U.T, pivoting=True, mode="economic")
        A, _, Bt = linalg.svd(U[piv[:k]].T, full_matrices=False)
        self.rotation_ = A @ Bt  # (w, k), orthonormal columns
        self.labels_ = self.predict(U)
        return self

    def predict(self, X):
        return np.abs(np.asarray(X) @ self.rotation_).argmax(axis=1)


class Discretize(ClusterMixin, BaseEstimator):
    """Labels by the discretization of Yu & Shi (2003), "Multiclass spectral clustering".

    Alternates between the nearest indicator matrix Y = onehot(argmax Ũ R) and the orthogonal
    map R (w × k, orthonormal columns; k = ``n_clusters`` ≤ w, the embedding's columns) that
    best takes the row-normalized embedding Ũ onto it (an SVD of ŨᵀY), until the
    objective stops improving. R is kept so that ``predict`` labels new samples. When an SVD
    does not converge, it starts again from another random sample, at most
    ``max_svd_restarts`` times (scikit-learn's name for the same thing).
    """

    def __init__(self, n_clusters: int = 8, max_iter: int = 30, max_svd_restarts: int = 30,
                 random_state=None):
        self.n_clusters = n_clusters
        self.max_iter = max_iter
        self.max_svd_restarts = max_svd_restarts
        self.random_state = random_state

    def fit(self, X, y=None):
        U = _row_normalize(np.asarray(X, dtype=np.float64))
        n, w = U.shape
        k = _check_columns(U, self.n_clusters)
        rng = check_random_state(self.random_state)
        for _ in range(self.max_svd_restarts):
            # Initial rotation: start at a random sample, then add the sample least aligned
            # with those picked so far (Yu & Shi's greedy orthogonal initialisation).
            R = np.zeros((w, k))
            R[:, 0] = U[rng.randint(n)]
            overlap = np.zeros(n)
            for j in range(1, k):
                overlap += np.abs(U @ R[:, j - 1])
                R[:, j] = U[np.argmin(overlap)]
            try:
                best = -np.inf
                for _ in range(self.max_iter):
                    Y = np.zeros((n, k))
                    Y[np.arange(n), (U @ R).argmax(axis=1)] = 1.0
                    A, s, Bt = linalg.svd(U.T @ Y, full_matrices=False)
                    R = A @ Bt
                    # s.sum() is the trace of the rotated fit: stop when it stops growing.
                    if s.sum() <= best + np.finfo(float).eps * max(1.0, best):
                        break
                    best = s.sum()
                break
            except linalg.LinAlgError:  # SVD did not converge: restart from another sample
                continue
        self.rotation_ = R
        self.labels_ = self.predict(U)
        return self

    def predict(self, X):
        return (_row_normalize(np.asarray(X, dtype=np.float64)) @ self.rotation_).argmax(axis=1)


def _check_columns(U: np.ndarray, n_clusters: int) -> int:
    if not 1 <= n_clusters <= U.shape[1]:
        raise ValueError(f"n_clusters={n_clusters} needs an embedding with at least that many "
                         f"columns; got {U.shape[1]}.")
    return int(n_clusters)


def _row_normalize(U: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(U, axis=1, keepdims=True)
    return np.divide(U, norms, out=np.zeros_like(U), where=norms > 0)


#: KMeans starts that ``n_init='auto'`` means on an embedding wider than ``n_clusters``.
WIDE_EMBEDDING_N_INIT = 10


def kmeans_n_init(n_init: int | str, n_clusters: int, width: int | None) -> int | str:
    """What ``n_init`` KMeans gets: ``'auto'`` is 10 starts on an embedding with more
    columns than clusters (the k-NN graph's, :func:`~spectral_core.embedding_width`), and
    scikit-learn's ``'auto'`` (one k-means++ start) otherwise.

    Parameters
    ----------
    n_init : 'auto' or int
        The estimator's ``n_init``.
    n_clusters : int
        Number of clusters.
    width : int or None
        Columns of the embedding.

    Returns
    -------
    'auto' or int

    One start on the wider embedding is unstable: two moons (k = 2, 4 columns) got ARI
    0.60-0.88 from one start and 1.0 from ten; on the k-column embedding of the kernel
    affinities ten starts measured no better than one.

    >>> kmeans_n_init("auto", 10, 12), kmeans_n_init("auto", 10, 10), kmeans_n_init(3, 10, 12)
    (10, 'auto', 3)
    """
    if n_init == "auto" and width is not None and width > n_clusters:
        return WIDE_EMBEDDING_N_INIT
    return n_init


def make_assigner(
    assign_labels: Any,
    n_clusters: int,
    *,
    n_init: int | str = "auto",
    kmeans_params: dict[str, Any] | None = None,
    random_state: int | None = None,
    width: int | None = None,
) -> BaseEstimator:
    """The (unfitted) clusterer for an ``assign_labels`` value; never mutates the argument.

    Parameters
    ----------
    assign_labels : str or estimator
        ``'kmeans'``, ``'sklearn-kmeans'``, ``'discretize'``, ``'cluster_qr'``,
        ``'consensus'`` (:class:`~spectral_core.ConsensusKMeans`) or a clusterer instance
        (cloned).
    n_clusters : int
        Number of clusters.
    n_init : 'auto' or int, default='auto'
        See :func:`kmeans_n_init`.
    kmeans_params : dict or None, default=None
        Extra parameters of the clusterer; they take precedence.
    random_state : int or None, default=None
        From :func:`assignment_seed`.
    width : int or None, default=None
        The number of embedding columns (see :func:`kmeans_n_init`).

    Returns
    -------
    estimator
        Unfitted.

    Examples
    --------
    >>> from spectral_core.blocks import make_assigner
    >>> make_assigner("kmeans", 3, random_state=0, width=3)
    KMeans(n_clusters=3, random_state=0)
    >>> make_assigner("kmeans", 10, random_state=0, width=12).n_init
    10
    """
    params = dict(kmeans_params or {})
    if isinstance(assign_labels, str) and assign_labels == "consensus":
        from ._ensemble import ConsensusKMeans

        # n_init='auto' is the consensus's own default (its starts on each of its widths).
        return ConsensusKMeans(n_clusters, random_state=random_state,
                               **({} if n_init == "auto" else {"n_init": n_init}))
    n_init = kmeans_n_init(n_init, n_clusters, width)
    if isinstance(assign_labels, str):
        if assign_labels in ("kmeans", "sklearn-kmeans"):
            # kmeans_params may override what the estimator sets (as in dask-ml).
            return KMeans(**{"n_clusters": n_clusters, "n_init": n_init,
                             "random_state": random_state, **params})
        if assign_labels == "discretize":
            return Discretize(n_clusters=n_clusters, random_state=random_state)
        if assign_labels == "cluster_qr":
            return ClusterQR(n_clusters=n_clusters)
        raise ValueError(f"Unknown assign_labels {assign_labels!r}.")
    assigner = clone(assign_labels)
    own = assigner.get_params(deep=False)
    if "n_clusters" in own:
        params.setdefault("n_clusters", n_clusters)
    if "random_state" in own and own["random_state"] is None and random_state is not None:
        params.setdefault("random_state", random_state)
    return assigner.set_params(**params)


def assignment_seed(random_state: int | np.random.RandomState | None) -> int:
    """The one seed of the assignment stage: it draws the sample and seeds the clusterer.

    Parameters
    ----------
    random_state : int, RandomState or None
        The estimator's ``random_state`` (the pipeline passes its run's seed).

    Returns
    -------
    int
        The same for the same integer ``random_state``.

    Examples
    --------
    >>> from spectral_core.blocks import assignment_seed
    >>> assignment_seed(0) == assignment_seed(0)
    True
    """
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def fit_rows(n: int, seed: int) -> np.ndarray | None:
    """The sorted rows the assigner is fitted on, or None for all of them (n ≤ FIT_ROWS).

    Above 100,000 rows the clusterer is fitted on a uniform sample of 100,000 rows of the
    embedding, then labels every row; the library and the pipeline draw the same sample.

    Parameters
    ----------
    n : int
        Rows of the embedding.
    seed : int
        From :func:`assignment_seed`.

    Returns
    -------
    ndarray of int or None

    Examples
    --------
    >>> from spectral_core.blocks import assignment_seed, fit_rows
    >>> fit_rows(5_000, assignment_seed(0)) is None
    True
    >>> rows = fit_rows(1_000_000, assignment_seed(0))
    >>> rows.shape, bool((rows[1:] > rows[:-1]).all())
    ((100000,), True)
    """
    if n <= FIT_ROWS:
        return None
    # numpy's Generator draws without replacement in O(size); the legacy RandomState
    # permutes all n rows first (0.06-0.1 s at n = 1M, measured).
    return np.sort(np.random.default_rng(seed).choice(n, FIT_ROWS, replace=False))


def assign_labels(
    embedding: Any,
    n_clusters: int,
    *,
    assigner: Any = "kmeans",
    n_init: int | str = "auto",
    kmeans_params: dict[str, Any] | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, BaseEstimator, _OffsetMap]:
    """Stage 5: cluster the (n, k) embedding.

    Parameters
    ----------
    embedding : ndarray or dask array of shape (n, k)
        Row-normalized spectral embedding (computed once into memory here: n·k is small).
        With more than :data:`FIT_ROWS` rows, a clusterer that can ``predict`` (every string
        assigner) is fitted on a uniform sample of that many rows (:func:`fit_rows`), and
        every row is labelled by ``predict``.
    n_clusters : int
    assigner : {'kmeans', 'sklearn-kmeans', 'discretize', 'cluster_qr', 'consensus'} or estimator
        A clusterer instance is cloned, given ``n_clusters`` (and ``random_state`` when it has
        one left at None) and ``kmeans_params``; the argument itself is never modified.
    n_init, kmeans_params, random_state
        As for :class:`~spectral_core.SpectralClustering`.

    Returns
    -------
    labels : ndarray of shape (n,)
        Numbered by first appearance in row order (see :func:`first_appearance_order`).
    fitted : estimator
        The fitted clusterer.
    mapping : mapping
        ``mapping[fitted.predict(U)]`` labels new rows consistently with ``labels``.

    Examples
    --------
    >>> import numpy as np
    >>> U = np.repeat(np.eye(3), 4, axis=0)[::-1]  # three tight clusters, last one first
    >>> labels, model, mapping = assign_labels(U, 3, random_state=0)
    >>> labels.tolist()
    [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    """
    U = embedding.compute() if is_dask_array(embedding) else np.asarray(embedding)
    # A row is all zero iff the sum of its |u| is: one BLAS matrix-vector product instead of
    # U.any(axis=1), whose cast and 8-wide reductions cost 7 % of a 1M-row fit (profile.md).
    zero = int(np.count_nonzero(np.abs(U) @ np.ones(U.shape[1], dtype=U.dtype) == 0))
    if zero:
        warnings.warn(
            f"{zero} of {U.shape[0]} samples have an all-zero embedding (no affinity to any "
            "landmark); the clusterer sees them at the origin. Use a smaller 'gamma' or more "
            "landmarks (n_components).",
            ZeroEmbeddingWarning,
            stacklevel=2,
        )
    seed = assignment_seed(random_state)
    model = make_assigner(assigner, n_clusters, n_init=n_init, kmeans_params=kmeans_params,
                          random_state=seed, width=U.shape[1])
    if hasattr(model, "predict"):
        rows = fit_rows(U.shape[0], seed)
        model.fit(U if rows is None else U[rows])
        from sklearn import config_context

        from ._ensemble import ConsensusKMeans

        if rows is None and isinstance(model, ConsensusKMeans):
            raw = model.labels_  # its predict of the rows it was fitted on
        else:
            # U is finite by construction (degrees are clipped, zero rows stay zero): skip
            # the finiteness check predict would repeat over all n rows.
            with config_context(assume_finite=True):
                raw = np.asarray(model.predict(U))
    elif hasattr(model, "fit_predict"):
        raw = np.asarray(model.fit_predict(U))
    else:
        raw = np.asarray(model.fit(U).labels_)
    mapping = first_appearance_order(raw)
    return mapping[raw] if raw.size else raw, model, mapping


def first_appearance_order(raw: np.ndarray) -> _OffsetMap:
    """A map from the clusterer's labels to labels numbered by first appearance in row order.

    The clusterer's numbering is arbitrary: with a repeated top eigenvalue (well-separated
    clusters) the eigenvectors are any basis of their eigenspace, and round-off from another
    block layout picks another one, permuting KMeans' numbering but not the partition. Numbering
    clusters by their first row makes the labels a function of the partition alone, so numpy,
    dask and pipeline runs agree exactly. Negative labels (noise, e.g. DBSCAN's -1) are kept.
    """
    return order_by_first_row(first_rows(raw))


def first_rows(raw: np.ndarray, offset: int = 0) -> dict[int, int]:
    """``{label: index of its first row}`` (+ ``offset``), for labels given block by block.

    Parameters
    ----------
    raw : ndarray of int
        The clusterer's labels of one block.
    offset : int, default=0
        The block's first row in the whole of X.

    Returns
    -------
    dict
        Merged over the blocks (the first row of each label wins), it gives
        :func:`order_by_first_row` its input.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core.blocks import first_rows
    >>> first_rows(np.array([2, 2, 0, 1, 0]), offset=10)
    {0: 12, 1: 13, 2: 10}
    """
    raw = np.asarray(raw)
    if raw.size == 0:
        return {}
    low = int(min(raw.min(), 0))
    size = int(raw.max()) - low + 1
    if size <= 64:
        # Few labels (KMeans' k): one short-circuiting argmax per label instead of sorting n.
        present = np.flatnonzero(np.bincount(raw - low, minlength=size)) + low
        return {int(label): offset + int(np.argmax(raw == label)) for label in present}
    labels, first = np.unique(raw, return_index=True)
    return {int(label): offset + int(i) for label, i in zip(labels, first, strict=True)}


def order_by_first_row(first: dict[int, int]) -> _OffsetMap:
    """The first-appearance numbering from each label's first row.

    Labels are renumbered 0, 1, 2, ... in the order their first rows appear, so the same data
    and seed give the same labels whatever the chunking; the pipeline merges the
    :func:`first_rows` of its blocks into ``first``.

    Parameters
    ----------
    first : dict
        ``{raw label: index of its first row}``.

    Returns
    -------
    mapping
        Indexed by an array of raw labels, it returns their final labels.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core.blocks import order_by_first_row
    >>> order_by_first_row({2: 10, 0: 12, 1: 13})[np.array([2, 2, 0, 1, 0])]
    array([0, 0, 1, 2, 1])
    """
    if not first:
        return _OffsetMap(np.zeros(0, dtype=np.int64), 0)
    offset = int(min(min(first), 0))
    mapping = np.full(int(max(first)) - offset + 1, -1, dtype=np.int64)
    ordered = sorted(first, key=first.__getitem__)
    clusters = [label for label in ordered if label >= 0]
    mapping[np.asarray(clusters, dtype=np.int64) - offset] = np.arange(len(clusters))
    for label in ordered:
        if label < 0:
            mapping[label - offset] = label
    return _OffsetMap(mapping, offset)


class _OffsetMap:
    """``m[labels]`` for labels that may be negative (noise labels map to themselves)."""

    def __init__(self, table: np.ndarray, offset: int):
        self.table = table
        self.offset = offset

    def __getitem__(self, labels):
        return self.table[np.asarray(labels) - self.offset]
