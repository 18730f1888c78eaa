"""The scikit-learn estimator: the five stages, wired together."""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from ._assign import assign_labels
from ._blocks import as_blocks, local_threads
from ._eigen import eigendecompose, eigengap_n_clusters, embedding_width, spectrum_size
from ._embed import embed, embed_rows
from ._kernel_blocks import choose_cache_budget, kernel_blocks
from ._kernels import make_kernel
from ._landmarks import sample_landmarks
from ._suggest import suggest_n_clusters
from ._utils import (
    STAGES,
    is_dask_array,
    resolve_n_jobs,
    stage_seeds,
    stage_timer,
)
from ._validation import (
    OWNER,
    check_array_input,
    check_n_samples,
    check_nonnegative,
    check_params,
    check_precomputed_shape,
    data_stats,
    finite_error,
)

logger = logging.getLogger(__name__)

__all__ = ["STAGES", "SpectralClustering", "compute_context", "stage_seeds"]

@contextmanager
def compute_context(is_dask: bool, n_jobs: int | None):
    """Where block work runs: a live ``distributed`` client for dask input, else ``n_jobs``
    local threads (with one BLAS thread each when there are several, so they do not
    oversubscribe the cores)."""
    workers = resolve_n_jobs(n_jobs)
    with ExitStack() as stack:
        stack.enter_context(local_threads(workers))
        if not (is_dask and _has_distributed_client()):
            if is_dask or "dask" in sys.modules:  # numpy input never imports dask itself
                import dask.config

                stack.enter_context(dask.config.set(scheduler="threads", num_workers=workers))
            if workers > 1:
                stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        yield


def _has_distributed_client() -> bool:
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return False
    return True


class SpectralClustering(ClusterMixin, TransformerMixin, BaseEstimator):
    """Normalized spectral clustering with a Nyström approximation of the affinity.

    Drop-in for ``dask_ml.cluster.SpectralClustering`` (same parameters and defaults), on numpy
    arrays, pandas DataFrames and row-chunked dask arrays. The n×n affinity is never formed:
    it is approximated from ``n_components`` landmarks, K ≈ C W⁺ Cᵀ with C = κ(X, L) evaluated
    block by block, and the embedding is made of eigenvectors of the approximated normalized
    affinity D^{-1/2} K D^{-1/2} (orthonormal, then row-normalized): the top ``n_clusters``
    for the kernel affinities, the top ``n_clusters + 2`` for ``'nearest_neighbors'``
    (:func:`spectral_core.embedding_width`). ``n_embedding`` below is that
    number of columns.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters, in [1, n_components].
    eigen_solver : {None, 'arpack', 'lobpcg', 'amg'}, default=None
        Solver for the small (r × r, r ≤ n_components) eigenproblem. None is dense LAPACK;
        'amg' needs the ``amg`` extra (pyamg).
    random_state : int, RandomState or None, default=None
        Seeds the landmark choice, the iterative eigensolvers and the label assignment.
    n_init : 'auto' or int, default='auto'
        Number of KMeans initialisations (``assign_labels='kmeans'`` only). ``'auto'`` is 10
        on the k-NN graph's wider embedding and scikit-learn's ``'auto'`` (one k-means++
        start) otherwise (:func:`spectral_core.blocks.kmeans_n_init`).
    gamma : float or None, default=1.0
        Kernel coefficient for 'rbf', 'laplacian', 'chi2', 'poly', 'polynomial', 'sigmoid'.
        None: the kernel's own default, as in scikit-learn (1 / n_features; 1.0 for chi2).
        Ignored by 'nearest_neighbors', whose bandwidths come from the data.
    affinity : str or callable, default='rbf'
        Any kernel of :data:`sklearn.metrics.pairwise.PAIRWISE_KERNEL_FUNCTIONS`;
        'nearest_neighbors' (each sample linked to its ``n_neighbors`` nearest landmarks with
        Gaussian weights: the landmark bipartite graph of Chen & Cai 2011, usually the most
        accurate choice); 'precomputed' (X is the n × n affinity, only its landmark columns
        are read); or a callable ``f(X, Y, **kw) -> (n_x, n_y)``, given gamma, degree and
        coef0 (those its signature names, or all three if it takes ``**kwargs``) and
        ``kernel_params``.
    n_neighbors : int, default=10
        Landmarks each sample links to, for ``affinity='nearest_neighbors'``.
    eigen_tol : float or 'auto', default=0.0
        Stopping tolerance of 'arpack', 'lobpcg' and 'amg'; 0 or 'auto' means the solver's
        default.
    assign_labels : {'kmeans', 'sklearn-kmeans', 'discretize', 'cluster_qr', 'consensus'} \
or estimator
        How the embedding becomes labels: scikit-learn KMeans ('sklearn-kmeans' is an alias
        kept for dask-ml compatibility), Yu & Shi's discretization, Damle et al.'s QR
        assignment, a consensus of quick k-means on a wider embedding
        (:class:`ConsensusKMeans`: 6 · n_clusters + 2 eigenvectors; steadier and more
        accurate on the k-NN graph for 0.3-3 s more; an instance of it, e.g.
        ``ConsensusKMeans(member_n_clusters=(20, 60))``, gets the same wide embedding), or any
        clusterer instance (cloned, never modified; its ``n_clusters`` set).
    degree : float, default=3
        Degree of the 'poly' kernel.
    coef0 : float, default=1
        Zero coefficient of the 'poly' and 'sigmoid' kernels.
    kernel_params : dict or None, default=None
        Extra keyword arguments for a callable affinity (string kernels take theirs from
        gamma, degree and coef0 and accept none here).
    n_jobs : int or None, default=1
        Threads for the block work; -1 uses all cores. Dask input under a ``distributed``
        client runs on that cluster instead.
    n_components : int, default=100
        Number of landmarks m (< n_samples).
    persist_embedding : bool, default=False
        Keep the row-normalized (n, n_embedding) embedding as ``embedding_`` (persisted in
        dask memory for dask input). Without it the embedding is still computed only once.
    kmeans_params : dict or None, default=None
        Extra parameters for the KMeans (or the given clusterer) that assigns labels; they
        take precedence over what the estimator sets (``n_clusters``, ``n_init``,
        ``random_state``), as in dask-ml.
    landmarks : {'random', 'kmeans'}, default='random'
        'random': distinct rows of X drawn uniformly (dask-ml's choice); 'kmeans': centres of
        a short k-means on a sample of 10 · n_components rows, which gives better landmarks
        at a cost independent of n.

    Attributes
    ----------
    labels_ : ndarray or dask array of shape (n_samples,)
        numpy for numpy/pandas input, dask for dask input.
    assign_labels_ : estimator
        The fitted label assigner.
    eigenvalues_ : ndarray of shape (n_embedding,)
        Eigenvalues of the approximated normalized affinity behind the embedding's columns,
        descending.
    spectrum_ : ndarray of shape (n_spectrum,)
        The leading eigenvalues of the same affinity, descending: n_spectrum =
        min(r, max(2 · n_embedding, 20)) (:func:`spectral_core.spectrum_size`, r the rank of
        the approximation), more than ``n_clusters`` so that the gap after the last cluster
        is visible. Its first n_embedding values are ``eigenvalues_`` (for the iterative
        solvers, to their tolerance: a values-only ARPACK solve computes it).
    eigengap_n_clusters_ : int or None
        The ``n_clusters`` suggested by the largest gap of ``spectrum_``
        (:func:`spectral_core.eigengap_n_clusters`); None when the approximation has rank 1.
        A fit with a guessed ``n_clusters`` tells what to try next. Its rule (any gap, k = 1
        and the last computed gap included) names 22 on digits; prefer
        ``n_clusters_suggestion_``.
    n_clusters_suggestion_ : NClustersSuggestion
        The suggestion of :func:`spectral_core.suggest_n_clusters` on ``spectrum_``: the k of
        the largest eigengap among 2 … n_spectrum / 2 when it is at least five times every
        other (``.n_clusters``, ``.clear``), else the range with no clear choice (``.low``,
        ``.high``), and the gaps it compared (``.candidates``, ``.curve``).
    landmarks_ : ndarray of shape (n_components, n_features)
        The landmark points (for 'precomputed': W = X[I][:, I]).
    landmark_indices_ : ndarray of shape (n_components,) or None
        Rows of X used as landmarks, None for ``landmarks='kmeans'``.
    embedding_ : ndarray or dask array of shape (n_samples, n_embedding)
        Only with ``persist_embedding=True``.
    projection_ : ndarray of shape (n_components, n_embedding)
        P, which maps a row's kernel against the landmarks to its embedding
        (:class:`spectral_core.EigenResult`); ``transform`` and ``predict`` use it.
    degree_weights_ : ndarray of shape (n_components,)
        t, so that the approximate degree of a row with kernel row c is cᵀt
        (:class:`spectral_core.KernelSummary`).
    degree_floor_ : float
        Degrees below this are clipped to it, for the fitted rows and new ones alike.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only for DataFrame input with string column names.
    n_clipped_degrees_ : int
        Rows whose approximate degree was clipped to a positive floor.
    stage_timings_ : dict
        Seconds spent in each stage.

    Notes
    -----
    Cost: three passes over X, each O(n · m · d) for the kernel plus O(n · m · r) for the
    Gram; the eigenproblems are m × m. Memory: O(block · m + m²) for dask input. For
    in-memory input the n × m kernel C is kept between the passes (one kernel evaluation
    instead of three), within a quarter of RAM, for the nearest-neighbour graph and every
    kernel but rbf; an rbf C is kept only below 64 MB (above, evaluating the fast kernel in
    each pass was measured faster than paging C in). Setting the
    ``spectral_core.kernel-cache`` budget (dask config, or the environment variable
    ``DASK_SPECTRAL_CORE__KERNEL_CACHE``) overrides that: C is then kept whenever it fits,
    and never with 0.

    References
    ----------
    Fowlkes, Belongie, Chung & Malik (2004), Spectral grouping using the Nyström method.
    Ng, Jordan & Weiss (2001), On spectral clustering: analysis and an algorithm.
    Chen & Cai (2011), Large scale spectral clustering with landmark-based representation.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from spectral_core import SpectralClustering
    >>> X, y = make_blobs(2000, centers=3, random_state=0)
    >>> sc = SpectralClustering(n_clusters=3, gamma=1.0, random_state=0).fit(X)
    >>> sc.labels_.shape, sc.eigenvalues_.shape, sc.spectrum_.shape
    ((2000,), (3,), (20,))
    >>> sc.eigengap_n_clusters_
    3
    >>> s = sc.n_clusters_suggestion_  # two of these blobs touch: the gap at 3 is not 5x
    >>> s.n_clusters, s.clear, (s.low, s.high)
    (None, False, (2, 3))
    """

    def __init__(
        self,
        n_clusters=8,
        eigen_solver=None,
        random_state=None,
        n_init="auto",
        gamma=1.0,
        affinity="rbf",
        n_neighbors=10,
        eigen_tol=0.0,
        assign_labels="kmeans",
        degree=3,
        coef0=1,
        kernel_params=None,
        n_jobs=1,
        n_components=100,
        persist_embedding=False,
        kmeans_params=None,
        landmarks="random",
    ):
        self.n_clusters = n_clusters
        self.eigen_solver = eigen_solver
        self.random_state = random_state
        self.n_init = n_init
        self.gamma = gamma
        self.affinity = affinity
        self.n_neighbors = n_neighbors
        self.eigen_tol = eigen_tol
        self.assign_labels = assign_labels
        self.degree = degree
        self.coef0 = coef0
        self.kernel_params = kernel_params
        self.n_jobs = n_jobs
        self.n_components = n_components
        self.persist_embedding = persist_embedding
        self.kmeans_params = kmeans_params
        self.landmarks = landmarks

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.affinity == "precomputed"
        return tags

    # ----------------------------------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit the clustering on X (numpy, pandas or a row-chunked dask array).

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features), or (n, n) for
            ``affinity='precomputed'``.
        y : ignored

        Returns
        -------
        self
        """
        # Every check that needs no pass over the data comes first: parameters, the kernel's
        # keywords, then the shape. Only then the one pass that finds NaN and the minimum.
        p = check_params(self)
        names = _feature_names(X)
        X = check_array_input(X)
        n, d = X.shape
        check_n_samples(n, p["n_components"])
        check_precomputed_shape((n, d), p["affinity"])
        kernel = make_kernel(
            p["affinity"], gamma=p["gamma"], degree=p["degree"], coef0=p["coef0"],
            kernel_params=p["kernel_params"], n_neighbors=p["n_neighbors"],
        )
        finite, low = data_stats(X)
        if not finite:
            raise finite_error(X)
        check_nonnegative(low, p["affinity"])
        is_dask = is_dask_array(X)
        # dask input is worked on chunk by chunk where it lives; numpy input in row blocks
        # on local threads.
        Xb = as_blocks(X) if is_dask else X
        seeds = stage_seeds(self.random_state)
        timings: dict[str, float] = {}
        with compute_context(is_dask, p["n_jobs"]):
            with stage_timer("sample_landmarks", timings):
                landmarks = sample_landmarks(
                    Xb, p["n_components"], method=p["landmarks"],
                    precomputed=p["affinity"] == "precomputed",
                    random_state=seeds["sample_landmarks"],
                )
            # In-memory data keeps C between the passes (one kernel evaluation instead of
            # three) where that pays (choose_cache_budget); dask input is never gathered into
            # the client.
            with stage_timer("kernel_blocks", timings):
                budget = 0 if is_dask else choose_cache_budget(Xb, landmarks, kernel)
                summary, kept = kernel_blocks(Xb, landmarks, kernel, min_rank=p["n_clusters"],
                                              keep_budget=budget)
            with stage_timer("eigendecompose", timings):
                rank = summary.gram.shape[0]
                width = embedding_width(p["affinity"], p["n_clusters"], rank, p["assign_labels"])
                eigen = eigendecompose(
                    summary, width, eigen_solver=p["eigen_solver"],
                    eigen_tol=p["eigen_tol"], random_state=seeds["eigendecompose"],
                    n_spectrum=spectrum_size(embedding_width(p["affinity"], p["n_clusters"],
                                                             rank), rank),
                )
            with stage_timer("embed", timings):
                U = embed(Xb, landmarks, kernel, summary, eigen, kept=kept)
                del kept  # n·m values: not kept past the embedding
                U = U.persist() if is_dask and p["persist_embedding"] else U
            with stage_timer("assign_labels", timings):
                labels, model, mapping = assign_labels(
                    U, p["n_clusters"], assigner=p["assign_labels"], n_init=p["n_init"],
                    kmeans_params=p["kmeans_params"], random_state=seeds["assign_labels"],
                )

        self._kernel = kernel
        self._landmark_set = landmarks
        self._n_jobs = p["n_jobs"]
        self.landmarks_ = landmarks.points
        self.landmark_indices_ = landmarks.indices
        self.degree_weights_ = summary.degree_weights
        self.degree_floor_ = summary.degree_floor
        self.projection_ = eigen.projection
        self.eigenvalues_ = eigen.eigenvalues
        self.spectrum_ = eigen.spectrum
        self.eigengap_n_clusters_ = eigengap_n_clusters(eigen.spectrum) \
            if eigen.spectrum.size >= 2 else None
        self.n_clusters_suggestion_ = suggest_n_clusters(eigen.spectrum)
        self.n_clipped_degrees_ = summary.n_clipped
        self.assign_labels_ = model
        self._label_map = mapping
        self.n_features_in_ = d
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        if is_dask:
            import dask.array as da

            labels = da.from_array(labels, chunks=Xb.chunks[0])
        self.labels_ = labels
        if p["persist_embedding"]:
            self.embedding_ = U
        elif hasattr(self, "embedding_"):
            del self.embedding_
        self.stage_timings_ = timings
        return self

    # ----------------------------------------------------------------------------------------
    def transform(self, X):
        """Embed new samples: c = κ(x, L), u = (c/√(cᵀt)) P, row-normalized (out of sample).

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features_in_)

        Returns
        -------
        ndarray or dask array of shape (n_samples, n_embedding)
            The row-normalized spectral embedding; dask in, dask out.
        """
        check_is_fitted(self, "projection_")
        X = self._check_new(X)
        is_dask = is_dask_array(X)
        if is_dask:
            X = as_blocks(X)
        with compute_context(is_dask, self._n_jobs):
            U = embed_rows(
                X, self._landmark_set, self._kernel, self.degree_weights_,
                self.degree_floor_, self.projection_,
            )
        return U

    def _assigner_has_predict(self):
        if hasattr(self, "assign_labels_"):
            return hasattr(self.assign_labels_, "predict")
        return isinstance(self.assign_labels, str) or hasattr(self.assign_labels, "predict")

    @available_if(_assigner_has_predict)
    def predict(self, X):
        """Label new samples with the fitted assigner on their embedding.

        Parameters
        ----------
        X : array-like or dask array of shape (n_samples, n_features_in_)

        Returns
        -------
        ndarray or dask array of shape (n_samples,)
        """
        U = self.transform(X)
        if is_dask_array(U):
            return U.map_blocks(self._predict_embedded, drop_axis=1, dtype=np.int64)
        return self._predict_embedded(U)

    def _predict_embedded(self, U):
        return self._label_map[self.assign_labels_.predict(U)]

    def _check_new(self, X):
        names = _feature_names(X)
        X = check_array_input(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {OWNER} is expecting "
                f"{self.n_features_in_} features as input (the number it was fitted with)."
            )
        fitted_names = getattr(self, "feature_names_in_", None)
        if fitted_names is not None and names is not None and list(names) != list(fitted_names):
            raise ValueError(
                f"The feature names of X passed to {OWNER}.predict should match those seen in "
                f"fit. Got {list(names)[:5]} instead of {list(fitted_names)[:5]}."
            )
        finite, _ = data_stats(X)
        if not finite:
            raise finite_error(X)
        return X


def _feature_names(X: Any) -> np.ndarray | None:
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = list(columns)
    if names and all(isinstance(c, str) for c in names):
        return np.asarray(names, dtype=object)
    return None
