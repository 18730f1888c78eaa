"""A consensus of several Nyström spectral clusterings (an explicit option, never the default).

Each member is a :class:`~spectral_core.SpectralClustering` fitted with its own seed (so its
own landmarks) and, optionally, its own number of clusters. The members' labels are combined
by partitioning the bipartite graph between the rows and all the members' clusters (Fern &
Brodley 2004), cut as Huang et al. do in U-SENC (IEEE TKDE 2020): the c × c cluster
co-occurrence matrix is the only eigenproblem, and a row's consensus embedding is the mean of
its clusters' eigenvector rows.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.utils.validation import check_is_fitted

from ._assign import _row_normalize, first_appearance_order, fit_rows
from ._eigen import CONSENSUS_MAX_FACTOR, GRAPH_EXTRA_EIGENVECTORS
from ._utils import check_random_state, is_dask_array, stage_timer

__all__ = ["ConsensusKMeans", "SpectralEnsemble", "cluster_cooccurrence", "consensus_embedding"]

OWNER = "SpectralEnsemble"

#: The consensus k-means is tried on the first k, k + 1, ..., k + EXTRA_WIDTHS eigenvectors of
#: the cluster graph, ``n_init`` starts each; the partition that agrees most with the members
#: is kept (see _choose_consensus).
EXTRA_WIDTHS = 2


#: The members' k-means when ``estimator`` is None: one start, five iterations. U-SENC's
#: recipe (Huang et al. 2020): members that stop early differ more, and the consensus gains
#: from it (PenDigits, 10 members of 20-60 clusters, the same consensus: NMI 85.2 against 84.5
#: with converged members; benchmarks/accuracy.md).
DIVERSE_KMEANS = {"n_init": 1, "max_iter": 5}


#: ConsensusKMeans.predict labels this many rows at a time.
PREDICT_ROWS = 65_536
#: SpectralEnsemble's 'auto' members (whole fits) draw their clusters from ENSEMBLE_MIN_FACTOR · k
#: to CONSENSUS_MAX_FACTOR · k: U-SENC's over-segmentation, 20-60 for ten classes.
ENSEMBLE_MIN_FACTOR = 2
#: ConsensusKMeans' 'auto' members (k-means on one embedding) draw theirs from
#: CONSENSUS_MIN_FACTOR · k to CONSENSUS_MAX_FACTOR · k. Members near k fix the few-class tables
#: where 2k-6k lost NMI to k-means (segment 64.3 → 68.3) and gain on the digit sets; MNIST at
#: m = 1,000 loses 1.6 of NMI (benchmarks/accuracy.md, "The members' range, read again").
CONSENSUS_MIN_FACTOR = 1


def _recommended():
    from ._estimator import SpectralClustering

    return SpectralClustering(affinity="nearest_neighbors", n_neighbors=5,
                              landmarks="kmeans", n_components=500,
                              kmeans_params=dict(DIVERSE_KMEANS))


class SpectralEnsemble(ClusterMixin, BaseEstimator):
    """Consensus of ``n_members`` Nyström spectral clusterings, each with its own landmarks.

    A single fit depends on its landmarks: on some data, a few seeds in ten find a different
    partition (PenDigits: clustering accuracy 74 % instead of 88 %). The ensemble fits
    ``n_members`` clones of ``estimator``, each with its own ``random_state`` (and, with
    ``member_n_clusters``, its own number of clusters), and cuts the bipartite graph between
    the rows and all the members' clusters into ``n_clusters`` (Huang et al.'s transfer cut):
    the result no longer depends on one draw of landmarks. It costs ``n_members`` fits; the
    consensus itself is one eigenproblem of the size of all the members' clusters together and
    one k-means on an (n, n_clusters) embedding.

    Use it when the labels must not depend on the seed; :class:`SpectralClustering` stays the
    default and the drop-in for dask-ml.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters of the consensus.
    estimator : SpectralClustering or None, default=None
        The members' template, cloned (never modified) and given each member's
        ``random_state`` and ``n_clusters``. None: the k-NN configuration,
        ``SpectralClustering(affinity='nearest_neighbors', n_neighbors=5, landmarks='kmeans',
        n_components=500)``, with ``kmeans_params={'n_init': 1, 'max_iter': 5}``: members
        whose k-means stops early differ more, which the consensus gains from. Give your own
        members the same ``kmeans_params`` for the same effect.
    n_members : int, default=10
        Number of member fits, ≥ 1. Twenty members of 1,000 landmarks (U-SENC's size) scored
        NMI 85.5 and accuracy 88.9 % on PenDigits, above the published U-SENC (85.34 and
        88.56), for twice ten's fits, each on twice the landmarks; digits gained nothing
        from twenty (docs/benchmarks.md).
    member_n_clusters : 'auto', int, (int, int) or None, default='auto'
        Clusters per member. 'auto': drawn for each member from 2 · n_clusters … 6 ·
        n_clusters (U-SENC's 20 … 60 for ten classes), capped at the members'
        ``n_components``: members that over-segment, whose clusters the consensus joins.
        None: ``n_clusters``; an int: that many for every member; ``(low, high)``: drawn from
        that inclusive range. The members' clusters must number at least ``n_clusters`` in
        all.
    n_init : int, default=5
        k-means starts on each width of the consensus embedding (k, k + 1 and k + 2 of its
        eigenvectors); of all of them, the partition that agrees most with the members (the
        highest average NMI) is kept.
    random_state : int, RandomState or None, default=None
        Seeds the members (their seeds and cluster numbers are drawn from it in a fixed
        order) and the consensus k-means.

    Attributes
    ----------
    labels_ : ndarray or dask array of shape (n_samples,)
        The consensus labels (dask for dask input), numbered by first appearance.
    members_ : list of SpectralClustering
        The fitted members.
    member_labels_ : ndarray or dask array of shape (n_samples, n_members)
        Each member's labels, column by column.
    cluster_vectors_ : ndarray of shape (n_member_clusters, width)
        One row per member cluster (member 0's clusters first): a row's consensus embedding is
        the mean of its members' cluster rows, then normalized. ``width``, between
        ``n_clusters`` and ``n_clusters + 2``, is the one whose partition was kept.
    eigenvalues_ : ndarray of shape (width,)
        The leading eigenvalues of the normalized cluster co-occurrence matrix, descending
        (1 first: the graph's trivial eigenvector).
    assign_labels_ : KMeans
        The k-means fitted on the consensus embedding.
    member_agreement_ : float
        The average NMI between the consensus and each member, on the rows the k-means was
        fitted on: what the consensus maximizes.
    n_features_in_ : int

    See Also
    --------
    SpectralClustering : one fit, the default.
    cluster_cooccurrence, consensus_embedding : the consensus, on any members' labels.

    References
    ----------
    Fern & Brodley (2004), Solving cluster ensemble problems by bipartite graph partitioning.
    Huang, Wang, Wu, Lai & Kwoh (2020), Ultra-scalable spectral clustering and ensemble
    clustering, IEEE TKDE 32(6).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from spectral_core import SpectralClustering, SpectralEnsemble
    >>> X, y = load_digits(return_X_y=True)
    >>> member = SpectralClustering(affinity="nearest_neighbors", n_neighbors=5,
    ...                             landmarks="kmeans", n_components=300,
    ...                             kmeans_params={"n_init": 1, "max_iter": 5})
    >>> ens = SpectralEnsemble(10, estimator=member, n_members=4, random_state=0).fit(X)
    >>> ens.labels_.shape, ens.member_labels_.shape
    ((1797,), (1797, 4))
    >>> [20 <= m.n_clusters <= 60 for m in ens.members_]  # 'auto': 2 to 6 times n_clusters
    [True, True, True, True]
    >>> adjusted_rand_score(y, ens.labels_) > 0.7
    True
    >>> bool((ens.predict(X[:100]) == ens.labels_[:100]).all())
    True
    """

    def __init__(self, n_clusters=8, *, estimator=None, n_members=10, member_n_clusters="auto",
                 n_init=5, random_state=None):
        self.n_clusters = n_clusters
        self.estimator = estimator
        self.n_members = n_members
        self.member_n_clusters = member_n_clusters
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the members on X, then their consensus.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features)
            Anything the members' estimator accepts.
        y : ignored

        Returns
        -------
        self
        """
        k, M, n_init = self._check_params()
        template = self._template()
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=M)
        ks = self._member_ks(rng, M, k)
        assign_seed = int(rng.randint(np.iinfo(np.int32).max))
        members = []
        for i, (seed, kk) in enumerate(zip(seeds, ks, strict=True)):
            # One log line per member (spectral_core's logger, INFO): the long part of a fit.
            with stage_timer(f"member {i + 1} of {M} ({int(kk)} clusters)"):
                member = clone(template).set_params(n_clusters=int(kk), random_state=int(seed))
                members.append(member.fit(X))
        # Each member's labels are 0 .. k_i - 1 (empty clusters simply have no rows).
        if is_dask_array(members[0].labels_):
            import dask.array as da

            labels = da.stack([m.labels_ for m in members], axis=1).rechunk({1: -1})
        else:
            labels = np.column_stack([m.labels_ for m in members])
        sizes = np.array([m.n_clusters for m in members])
        vectors, values, model, width, agreement = _consensus(labels, sizes, k, n_init,
                                                              assign_seed)
        U = consensus_embedding(labels, sizes, vectors[:, :width])
        U = U.compute() if is_dask_array(U) else U
        from sklearn import config_context

        with config_context(assume_finite=True):
            raw = model.predict(U)
        mapping = first_appearance_order(raw)
        out = mapping[raw]
        self.members_ = members
        self.member_labels_ = labels
        self.cluster_vectors_ = vectors[:, :width]
        self.eigenvalues_ = values[:width]
        self.assign_labels_ = model
        self.member_agreement_ = agreement
        self._label_map = mapping
        self.n_features_in_ = members[0].n_features_in_
        if is_dask_array(labels):
            import dask.array as da

            out = da.from_array(out, chunks=labels.chunks[0])
        self.labels_ = out
        return self

    def predict(self, X):
        """Label new rows: each member's ``predict``, then the consensus.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "cluster_vectors_")
        labels = np.column_stack([np.asarray(m.predict(X)) for m in self.members_])
        sizes = np.array([m.n_clusters for m in self.members_])
        U = consensus_embedding(labels, sizes, self.cluster_vectors_)
        return self._label_map[self.assign_labels_.predict(U)]

    # ----------------------------------------------------------------------------------------
    def _check_params(self) -> tuple[int, int, int]:
        k = _positive_int("n_clusters", self.n_clusters)
        M = _positive_int("n_members", self.n_members)
        n_init = _positive_int("n_init", self.n_init)
        params = getattr(self.estimator, "get_params", None)
        if self.estimator is not None and not (
            callable(params) and hasattr(self.estimator, "fit")
            and {"n_clusters", "random_state"} <= set(params())
        ):
            raise TypeError(
                f"The 'estimator' parameter of {OWNER} must be None or an unfitted clusterer "
                f"with n_clusters and random_state parameters (a SpectralClustering). Got "
                f"{self.estimator!r} instead."
            )
        _, high = self._member_range(k, M)
        landmarks = self._template().get_params().get("n_components")
        if _is_int(landmarks) and high > landmarks:
            raise ValueError(
                f"member_n_clusters asks for up to {high} clusters per member, but the members "
                f"have n_components={landmarks} landmarks; use fewer clusters or more landmarks."
            )
        return k, M, n_init

    def _template(self):
        return _recommended() if self.estimator is None else self.estimator

    def _member_range(self, k: int, M: int) -> tuple[int, int]:
        cap = self._template().get_params().get("n_components")
        cap = cap if _is_int(cap) else CONSENSUS_MAX_FACTOR * k
        return _member_range(self.member_n_clusters, k, M, ENSEMBLE_MIN_FACTOR, cap, OWNER)

    def _member_ks(self, rng, M: int, k: int) -> np.ndarray:
        low, high = self._member_range(k, M)
        return np.full(M, low) if low == high else rng.randint(low, high + 1, size=M)


class ConsensusKMeans(ClusterMixin, BaseEstimator):
    """Labels from a consensus of quick k-means on one spectral embedding's leading columns.

    The label assigner of ``assign_labels='consensus'``. It fits ``n_members`` k-means of
    k … 6k clusters (k = ``n_clusters``), each on the first ``k_i + extra_columns`` columns of
    the embedding (rows normalized again), with one k-means++ start and five iterations, and
    cuts the bipartite graph between the rows and all their clusters into k, as
    :class:`SpectralEnsemble` does with whole fits: of ``n_init`` k-means starts on k, k + 1
    and k + 2 of the consensus' eigenvectors, the partition that agrees most with the members
    (average NMI) is kept. One k-means on k columns keeps whichever partition its landmarks
    favour; the members see the next eigenvectors too, and their consensus is steadier and
    better on the digit sets (PenDigits at m = 1,000: accuracy 80.1 ± 1.4 → 88.1 ± 0.2 %;
    MNIST-70k: NMI 77.3 → 79.3) for 0.4-3 s of k-means at ten clusters.

    Members of 2k … 6k clusters only (``member_n_clusters=(2 * k, 6 * k)``, U-SENC's
    over-segmentation and the default before twenty members of k … 6k) score higher on MNIST
    at m = 1,000 (NMI 81.2 against 79.6, accuracy 86.3 ± 1.1 against 83.3 ± 0.2, paired on the
    same embeddings) and level or lower elsewhere, most on digits and on the few-class tables
    (segment, seven classes: NMI 64.3 against 68.3; benchmarks/accuracy.md).

    The embedding it is given must be wide: :func:`~spectral_core.embedding_width` with
    ``assign_labels='consensus'`` keeps 6k + 2 eigenvectors (capped by the rank). Members
    draw fewer clusters when there are fewer columns or rows.

    Parameters
    ----------
    n_clusters : int, default=8
    extra_columns : int, default=2
        Columns a member of k_i clusters sees beyond k_i (the k-NN graph's
        :func:`~spectral_core.embedding_width` rule).
    n_members : int, default=20
        Twenty members of k … 6k clusters measured better than ten on every data set but
        satimage (level), for ~0.7 s more on MNIST.
    member_n_clusters : 'auto', int, (int, int) or None, default='auto'
        Clusters per member, as :class:`SpectralEnsemble`'s. 'auto': drawn for each member
        from n_clusters … 6 · n_clusters, capped where the embedding's columns (less
        ``extra_columns``) or the fitted rows cannot hold them; None: n_clusters; an int: that
        many for every member; ``(low, high)``: drawn from that inclusive range (a member
        reads at most the columns there are).
    n_init : int, default=10
        Consensus k-means starts on each of its three widths. Ten measured better than five on
        all six digit-set rows of the accuracy table (e.g. MNIST at m = 1,000: accuracy 87.0
        against 85.0 %) for the same time: the members' k-means cost the most.
    max_fit_rows : int, default=20000
        The members and the consensus are fitted on at most this many rows, drawn uniformly;
        ``predict`` labels any number.
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Labels of the rows ``fit`` was given: ``predict``'s, exactly.
    members_ : list of (KMeans, int)
        Each member's k-means and the columns it reads.
    cluster_vectors_ : ndarray of shape (n_member_clusters, width)
        As :attr:`SpectralEnsemble.cluster_vectors_`.
    assign_labels_ : KMeans
        The k-means on the consensus embedding.
    member_agreement_ : float
        The kept partition's average NMI with the members, on the fitted rows.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import ConsensusKMeans
    >>> rng = np.random.default_rng(0)
    >>> centres = 8 * np.eye(8)[:3]                      # three groups in 8 columns
    >>> U = np.repeat(centres, 200, axis=0) + rng.normal(size=(600, 8))
    >>> model = ConsensusKMeans(3, random_state=0).fit(U)
    >>> [int(np.unique(model.labels_[i:i + 200]).size) for i in (0, 200, 400)]
    [1, 1, 1]
    >>> bool((model.predict(U) == model.labels_).all())
    True
    """

    def __init__(self, n_clusters=8, *, extra_columns=GRAPH_EXTRA_EIGENVECTORS, n_members=20,
                 member_n_clusters="auto", n_init=10, max_fit_rows=20_000, random_state=None):
        self.n_clusters = n_clusters
        self.extra_columns = extra_columns
        self.n_members = n_members
        self.member_n_clusters = member_n_clusters
        self.n_init = n_init
        self.max_fit_rows = max_fit_rows
        self.random_state = random_state

    def fit(self, X, y=None):
        """Fit the members on (a sample of) the embedding X, then their consensus.

        Parameters
        ----------
        X : array-like of shape (n_samples, width)
            A row-normalized spectral embedding, width ≥ ``n_clusters``.
        y : ignored

        Returns
        -------
        self
        """
        from sklearn.cluster import KMeans
        from sklearn.utils.validation import check_array

        owner = type(self).__name__
        k = _positive_int("n_clusters", self.n_clusters, owner)
        M = _positive_int("n_members", self.n_members, owner)
        n_init = _positive_int("n_init", self.n_init, owner)
        max_rows = _positive_int("max_fit_rows", self.max_fit_rows, owner)
        if not _is_int(self.extra_columns) or self.extra_columns < 0:
            raise ValueError(f"The 'extra_columns' parameter of ConsensusKMeans must be an int "
                             f">= 0. Got {self.extra_columns!r} instead.")
        U = check_array(X, dtype=[np.float64, np.float32])
        n, width = U.shape
        if not k <= min(n, width):
            raise ValueError(f"ConsensusKMeans with n_clusters={k} needs at least {k} rows and "
                             f"{k} columns; got an embedding of shape {U.shape}.")
        n_fit = min(n, max_rows)
        # 'auto': the sizes embedding_width widens the embedding for, fewer where the columns
        # or rows cannot hold them (never fewer than k).
        low, high = _member_range(self.member_n_clusters, k, M, CONSENSUS_MIN_FACTOR,
                                  max(k, min(width - int(self.extra_columns), n_fit)), owner)
        if high > n_fit:
            raise ValueError(f"{owner} cannot fit members of {high} clusters on {n_fit} rows: "
                             "use fewer clusters per member (member_n_clusters).")
        rng = check_random_state(self.random_state)
        rows = None if n <= max_rows else np.sort(rng.choice(n, max_rows, replace=False))
        # float64: scikit-learn's k-means++ computes float32 distances in upcast chunks, which
        # made the members' seeding slower than on a float64 copy (MNIST: 2.5 → 1.9 s a fit).
        Z = np.asarray(U if rows is None else U[rows], dtype=np.float64)
        ks = rng.randint(low, high + 1, size=M)
        members, labels = [], []
        for kk, seed in zip(ks, rng.randint(np.iinfo(np.int32).max, size=M), strict=True):
            cols = min(int(kk) + int(self.extra_columns), width)
            km = KMeans(int(kk), n_init=1, max_iter=5, random_state=int(seed))
            labels.append(km.fit(_row_normalize(Z[:, :cols])).labels_)
            members.append((km, cols))
        labels = np.column_stack(labels)
        vectors, _, model, kept, agreement = _consensus(
            labels, ks, k, n_init, int(rng.randint(np.iinfo(np.int32).max)))
        self.members_ = members
        self.cluster_vectors_ = vectors[:, :kept]
        self.assign_labels_ = model
        self.member_agreement_ = agreement
        self.n_features_in_ = width
        # predict's labels, exactly: assign_labels takes them for the rows it fitted on
        # instead of labelling those rows a second time (0.25 s of MNIST's fit).
        self.labels_ = self.predict(U)
        return self

    def predict(self, X):
        """Label rows of an embedding as wide as the one ``fit`` saw.

        Parameters
        ----------
        X : array-like of shape (n_samples, width)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "cluster_vectors_")
        U = np.asarray(X)
        if U.ndim != 2 or U.shape[1] != self.n_features_in_:
            raise ValueError(f"ConsensusKMeans was fitted on an embedding of "
                             f"{self.n_features_in_} columns; got shape {U.shape}.")
        sizes = np.array([km.n_clusters for km, _ in self.members_])
        out = np.empty(U.shape[0], dtype=np.int32)
        for start in range(0, U.shape[0], PREDICT_ROWS):  # bounded float64 temporaries
            block = np.asarray(U[start:start + PREDICT_ROWS], dtype=np.float64)
            labels = np.column_stack([km.predict(_row_normalize(block[:, :cols]))
                                      for km, cols in self.members_])
            out[start:start + len(block)] = self.assign_labels_.predict(
                consensus_embedding(labels, sizes, self.cluster_vectors_))
        return out


def _member_range(value: Any, k: int, n_members: int, min_factor: int, cap: int,
                  owner: str) -> tuple[int, int]:
    """The members' cluster counts (low, high) from a ``member_n_clusters`` value.

    'auto' is min_factor · k … CONSENSUS_MAX_FACTOR · k, none above ``cap``; None is k; an int
    that many; a pair (low, high) that inclusive range. Refused when ``n_members`` members of
    at most ``high`` clusters cannot make k consensus clusters.
    """
    if isinstance(value, str) and value == "auto":
        low, high = min(min_factor * k, cap), min(CONSENSUS_MAX_FACTOR * k, cap)
    elif value is None or _is_int(value):
        low = high = k if value is None else int(value)
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(_is_int(v) for v in value)):
        low, high = (int(v) for v in value)
    else:
        raise TypeError(
            f"The 'member_n_clusters' parameter of {owner} must be 'auto', None, an int or "
            f"a pair of ints (low, high). Got {value!r} instead."
        )
    if not 1 <= low <= high:
        raise ValueError(
            f"The 'member_n_clusters' parameter of {owner} must be ≥ 1 (and low ≤ high). "
            f"Got {value!r} instead."
        )
    if n_members * high < k:
        raise ValueError(
            f"{n_members} members of at most {high} clusters cannot make {k} consensus "
            "clusters: raise n_members or member_n_clusters."
        )
    return low, high


def cluster_cooccurrence(labels: Any, sizes: np.ndarray) -> np.ndarray:
    """How many rows each pair of member clusters shares: BᵀB for the rows × clusters graph B.

    Parameters
    ----------
    labels : ndarray or dask array of shape (n, M)
        Member j's label of each row in column j, in 0 .. sizes[j] - 1.
    sizes : ndarray of shape (M,)
        Clusters per member.

    Returns
    -------
    ndarray of shape (c, c), c = sizes.sum()
        Member j's clusters are rows sizes[:j].sum() … ; the diagonal holds the clusters'
        sizes. Dask input is summed block by block.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[0, 1], [0, 1], [1, 0]])  # two members, two clusters each
    >>> cluster_cooccurrence(labels, np.array([2, 2])).astype(int)
    array([[2, 0, 0, 2],
           [0, 1, 1, 0],
           [0, 1, 1, 0],
           [2, 0, 0, 2]])
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    c = int(sizes.sum())
    if is_dask_array(labels):
        import dask

        labels = labels.rechunk({1: -1})  # whole rows in each block
        parts = [dask.delayed(_block_cooccurrence)(b, offsets, c)
                 for b in labels.to_delayed().ravel()]
        return np.sum(dask.compute(*parts), axis=0)
    return _block_cooccurrence(np.asarray(labels), offsets, c)


def _block_cooccurrence(labels: np.ndarray, offsets: np.ndarray, c: int) -> np.ndarray:
    from scipy import sparse

    n, M = labels.shape
    cols = (labels.astype(np.int64) + offsets).ravel()
    B = sparse.csr_matrix((np.ones(n * M), (np.repeat(np.arange(n), M), cols)), shape=(n, c))
    return (B.T @ B).toarray()


def _consensus_vectors(counts: np.ndarray, n_members: int, k: int, width: int | None = None):
    """Leading eigenvectors of the normalized co-occurrence, carried to the clusters' rows.

    With B the rows × clusters graph (M ones per row) and D its clusters' sizes, the
    normalized bipartite affinity is B D^{-1/2} / √M; its top left singular vectors, the rows'
    embedding, are (B D^{-1/2} V) / √M Λ^{-1/2} for V, Λ the eigenpairs of
    D^{-1/2} BᵀB D^{-1/2} / M. The row scaling Λ^{-1/2} √M is dropped (rows are normalized
    afterwards and the columns' scale only weighs the k-means, measured to change nothing),
    so a row's embedding is the mean of its clusters' rows of D^{-1/2} V.
    """
    size = np.diag(counts).astype(np.float64)
    live = size > 0  # a member may leave a cluster empty
    s = np.sqrt(size[live])
    G = counts[np.ix_(live, live)] / np.outer(s, s) / n_members
    if G.shape[0] < k:
        raise ValueError(
            f"The members found {G.shape[0]} non-empty clusters in all, fewer than the "
            f"n_clusters={k} asked for: raise n_members or member_n_clusters."
        )
    width = min(k if width is None else width, G.shape[0])
    values, V = linalg.eigh(G, subset_by_index=(G.shape[0] - width, G.shape[0] - 1))
    order = np.argsort(values)[::-1]
    vectors = np.zeros((counts.shape[0], width))
    vectors[live] = V[:, order] / s[:, None]
    return vectors, values[order]


def consensus_embedding(labels: Any, sizes: np.ndarray, vectors: np.ndarray) -> Any:
    """Each row's consensus embedding: the mean of its member clusters' rows, normalized.

    Parameters
    ----------
    labels : ndarray or dask array of shape (n, M)
    sizes : ndarray of shape (M,)
        Clusters per member.
    vectors : ndarray of shape (sizes.sum(), k)
        :attr:`SpectralEnsemble.cluster_vectors_`.

    Returns
    -------
    ndarray or dask array of shape (n, k)

    Examples
    --------
    >>> import numpy as np
    >>> vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    >>> consensus_embedding(np.array([[0, 0], [1, 1]]), np.array([2, 2]), vectors)
    array([[1., 0.],
           [0., 1.]])
    """
    offsets = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))[:-1]])
    if is_dask_array(labels):
        labels = labels.rechunk({1: -1})
        return labels.map_blocks(_embed_block, offsets, vectors, drop_axis=1,
                                 new_axis=1, chunks=(labels.chunks[0], (vectors.shape[1],)),
                                 dtype=np.float64)
    return _embed_block(np.asarray(labels), offsets, vectors)


def _embed_block(labels: np.ndarray, offsets: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    # Member by member: one (n, width) gather each, not an (n, members, width) temporary
    # (0.2 s → 0.04 s for 70,000 rows, 10 members, 12 columns).
    labels = labels.astype(np.int64, copy=False)
    out = vectors[labels[:, 0] + offsets[0]]
    for j in range(1, labels.shape[1]):
        out += vectors[labels[:, j] + offsets[j]]
    return _row_normalize(out)


def _consensus(labels: Any, sizes: np.ndarray, k: int, n_init: int, seed: int):
    """The members' labels cut into k: the cluster graph's leading vectors (k + EXTRA_WIDTHS
    of them), their eigenvalues, and the chosen k-means with its width and agreement."""
    counts = cluster_cooccurrence(labels, sizes)
    vectors, values = _consensus_vectors(counts, labels.shape[1], k, k + EXTRA_WIDTHS)
    model, width, agreement = _choose_consensus(labels, sizes, vectors, k, n_init, seed)
    return vectors, values, model, width, agreement


def _choose_consensus(labels: Any, sizes: np.ndarray, vectors: np.ndarray, k: int,
                      n_init: int, seed: int):
    """The k-means on the consensus embedding whose partition agrees most with the members.

    Candidates: ``n_init`` single-start k-means on each width w = k … vectors.shape[1] of the
    embedding (its first w columns, rows normalized again), fitted on at most
    :data:`~spectral_core._assign.FIT_ROWS` sampled rows. The criterion is the average NMI
    between a candidate's labels and each member's on those rows: Strehl & Ghosh's (2002)
    objective for a consensus, which needs no true labels. k-means' own inertia cannot compare
    widths, and on PenDigits (20 members) it chose a partition 6 points of accuracy below the
    members' favourite in one seed of ten (benchmarks/accuracy.md).

    Returns
    -------
    model : KMeans
        Fitted on the sampled rows of the chosen width.
    width : int
    agreement : float
        Its average NMI with the members.
    """
    from sklearn.cluster import KMeans

    n = labels.shape[0]
    rows = fit_rows(n, seed)
    sample = labels if rows is None else labels[rows]
    sample = np.asarray(sample.compute() if is_dask_array(sample) else sample)
    rng = np.random.RandomState(seed)
    best = None
    for width in range(k, vectors.shape[1] + 1):
        U = consensus_embedding(sample, sizes, vectors[:, :width])
        for start in rng.randint(np.iinfo(np.int32).max, size=n_init):
            model = KMeans(k, n_init=1, random_state=int(start)).fit(U)
            score = np.mean([_nmi(model.labels_, sample[:, j]) for j in range(sample.shape[1])])
            if best is None or score > best[0]:
                best = (score, model, width)
    return best[1], best[2], float(best[0])


def _nmi(a: np.ndarray, b: np.ndarray) -> float:
    """NMI with the arithmetic mean of the entropies (scikit-learn's default), for labels
    0 … max, from one bincount: 0.3 ms against scikit-learn's 19.7 ms for 100,000 rows of 10
    and 60 clusters (measured), and the consensus computes it members × candidates times (300
    for 20 members: 0.1 s instead of 6 s). A test keeps it equal to scikit-learn's."""
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    joint = np.bincount(a.astype(np.int64) * kb + b, minlength=ka * kb).reshape(ka, kb)
    p = joint / a.size
    pa, pb = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = float(np.sum(p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])))
    ha = -float(np.sum(pa[pa > 0] * np.log(pa[pa > 0])))
    hb = -float(np.sum(pb[pb > 0] * np.log(pb[pb > 0])))
    if ha == 0 and hb == 0:
        return 1.0
    return max(mi, 0.0) / ((ha + hb) / 2) if ha + hb > 0 else 0.0


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _positive_int(name: str, value: Any, owner: str = OWNER) -> int:
    if not _is_int(value):
        raise TypeError(f"The {name!r} parameter of {owner} must be an int. Got {value!r} "
                        "instead.")
    if value < 1:
        raise ValueError(f"The {name!r} parameter of {owner} must be an int >= 1. Got "
                         f"{value!r} instead.")
    return int(value)
