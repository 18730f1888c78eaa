"""Stage ``eigendecompose``: the small r × r eigenproblem of G and the projection P."""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg, sparse

from ._kernel_blocks import KernelSummary
from ._messages import SolverFallbackWarning, import_pyamg
from ._utils import check_random_state

#: Eigenvectors the embedding keeps beyond ``n_clusters`` for the landmark k-NN graph
#: (see :func:`embedding_width`).
GRAPH_EXTRA_EIGENVECTORS = 2

#: ``assign_labels='consensus'`` members draw up to this many times ``n_clusters`` clusters,
#: each reading ``GRAPH_EXTRA_EIGENVECTORS`` more columns (:class:`~spectral_core.ConsensusKMeans`).
CONSENSUS_MAX_FACTOR = 6

#: The fewest leading eigenvalues :func:`eigendecompose` reports in ``EigenResult.spectrum``
#: (when the rank allows): enough to see a gap past the embedding for any ``n_clusters`` a
#: person would try by eye.
MIN_SPECTRUM = 20


def spectrum_size(n_vectors: int, rank: int) -> int:
    """Leading eigenvalues reported besides the ``n_vectors`` the embedding keeps.

    ``min(rank, max(2 · n_vectors, 20))``: the gap that suggests ``n_clusters`` must lie
    inside the spectrum, so it extends well past the embedding's width.

    Parameters
    ----------
    n_vectors : int
        Columns of the embedding (:func:`embedding_width`).
    rank : int
        Rank r of the Nyström approximation (at most ``n_components``).

    Returns
    -------
    int

    Examples
    --------
    >>> from spectral_core import spectrum_size
    >>> spectrum_size(3, 500), spectrum_size(12, 500), spectrum_size(3, 8)
    (20, 24, 8)
    """
    return min(rank, max(2 * n_vectors, MIN_SPECTRUM))


def eigengap_n_clusters(eigenvalues: ArrayLike, max_clusters: int | None = None) -> int:
    """The number of clusters at the largest eigengap of a normalized affinity's spectrum.

    With λ₁ ≥ λ₂ ≥ … ≥ λ_s the leading eigenvalues of Â = D^{-1/2} K D^{-1/2}, the
    suggestion is the k in 1 … ``max_clusters`` with the largest gap λ_k − λ_{k+1}. For c
    well-separated clusters Â is close to block diagonal, its top c eigenvalues are close to 1
    (one per block) and the next ones are clearly smaller, so the largest drop comes after the
    c-th (von Luxburg 2007, section 8.3). Equal gaps (within a relative 1e-9 of the largest,
    or 1e-12 absolute) go to the smallest k.

    Parameters
    ----------
    eigenvalues : array-like of shape (s,)
        Real, finite, in descending order (as ``SpectralClustering.spectrum_`` is), s ≥ 2.
    max_clusters : int or None, default=None
        Largest k considered, in [1, s − 1] (the gap after λ_k needs λ_{k+1}). None: s − 1.

    Returns
    -------
    int
        The suggested number of clusters, in [1, max_clusters].

    Raises
    ------
    TypeError
        ``eigenvalues`` is not numeric, or ``max_clusters`` is not an int.
    ValueError
        Fewer than 2 eigenvalues, not 1-D, not finite, not descending, or ``max_clusters``
        outside [1, s − 1].

    Notes
    -----
    The gap is absolute, not relative: eigenvalues of Â lie in [−1, 1], so absolute drops are
    comparable across k. A spectrum with no clear gap (one blob, noise) still gets an answer;
    read it with the eigenvalue plot of the flow's report. The answer depends on the
    affinity's scale as much as the clustering does: three touching blobs
    (``make_blobs(2000, centers=3, random_state=0)``) give 3 with rbf ``gamma=1`` and 1 with
    ``gamma=0.1``, whose wide kernel links them into one block.

    References
    ----------
    von Luxburg (2007), A tutorial on spectral clustering, Statistics and Computing 17(4).

    Examples
    --------
    >>> eigengap_n_clusters([1.0, 0.97, 0.96, 0.4, 0.35, 0.3])
    3
    >>> eigengap_n_clusters([1.0, 0.97, 0.96, 0.4, 0.35, 0.3], max_clusters=2)
    1
    """
    where = "eigengap_n_clusters"
    values = _check_spectrum(eigenvalues, where, "eigenvalues", min_size=2)
    s = values.size
    gaps = values[:-1] - values[1:]  # gaps[k-1] = λ_k − λ_{k+1}
    if max_clusters is None:
        max_clusters = s - 1
    if isinstance(max_clusters, bool) or not isinstance(max_clusters, numbers.Integral):
        raise TypeError(f"The 'max_clusters' parameter of {where} must be an int or None. "
                        f"Got {max_clusters!r} instead.")
    if not 1 <= max_clusters <= s - 1:
        raise ValueError(f"The 'max_clusters' parameter of {where} must be in [1, {s - 1}] "
                         f"(the gap after λ_k needs λ_(k+1), and {s} eigenvalues were given). "
                         f"Got {max_clusters!r} instead.")
    gaps = gaps[:max_clusters]
    best = gaps.max()
    ties = np.isclose(gaps, best, rtol=1e-9, atol=1e-12)
    return int(np.flatnonzero(ties)[0]) + 1


def _check_spectrum(eigenvalues: ArrayLike, where: str, name: str = "spectrum", *,
                    min_size: int = 2) -> np.ndarray:
    """A descending spectrum as float64, or the error that says what is wrong with it."""
    values = np.asarray(eigenvalues)
    if values.dtype == object or not (np.issubdtype(values.dtype, np.number)
                                      or values.dtype == bool):
        raise TypeError(f"The '{name}' parameter of {where} must be an array of real "
                        f"numbers. Got dtype {values.dtype} instead.")
    if np.iscomplexobj(values):
        raise TypeError(f"The '{name}' parameter of {where} must be real (the affinity "
                        f"is symmetric). Got dtype {values.dtype} instead.")
    values = values.astype(np.float64)
    if values.ndim != 1:
        raise ValueError(f"The '{name}' parameter of {where} must be 1-D. Got shape "
                         f"{values.shape} instead.")
    s = values.size
    if s < min_size:
        raise ValueError(f"The '{name}' parameter of {where} needs at least {min_size} "
                         f"value{'s' if min_size > 1 else ''} to have a gap. Got {s} instead.")
    if not np.isfinite(values).all():
        raise ValueError(f"The '{name}' parameter of {where} must be finite. Got "
                         f"{float(values[~np.isfinite(values)][0])!r} at index "
                         f"{int(np.flatnonzero(~np.isfinite(values))[0])} instead.")
    gaps = values[:-1] - values[1:]
    # Round-off of an iterative solver can swap two nearly equal eigenvalues; a real
    # increase is an input in the wrong order.
    tol = 1e-9 * max(float(np.abs(values).max(initial=0.0)), 1.0)
    if (gaps < -tol).any():
        i = int(np.flatnonzero(gaps < -tol)[0])
        raise ValueError(f"The '{name}' parameter of {where} must be in descending "
                         f"order. Got {float(values[i])!r} before {float(values[i + 1])!r} "
                         f"at index {i} instead; pass np.sort({name})[::-1].")
    return values


def embedding_width(affinity: str, n_clusters: int, rank: int,
                    assign_labels: object = "kmeans") -> int:
    """Columns of the embedding: the top eigenvectors of Â = D^{-1/2} K̂ D^{-1/2} it keeps.

    For the landmark k-NN graph (``'nearest_neighbors'``) the top ``n_clusters + 2``: the top
    eigenvector (eigenvalue 1, ∝ D^{1/2}1, the same for every row after the degree scaling)
    carries no cluster information, and the next ``n_clusters + 1`` carry more than the next
    ``n_clusters - 1`` (MNIST-70k ARI 0.60 → 0.67 with 10 KMeans starts; benchmarks/
    accuracy.md). The top one is kept rather than dropped: on a graph with disconnected
    parts the eigenvalue 1 is repeated, and dropping one vector of that eigenspace loses a
    cluster (two moons: ARI 1.0 → 0.3). For the kernel affinities the wider embedding
    measured no gain, so they keep the top ``n_clusters``, as dask-ml and scikit-learn do.
    With ``assign_labels='consensus'`` (or a :class:`~spectral_core.ConsensusKMeans`
    instance) the top ``6 · n_clusters + 2`` for any affinity: its members of up to
    6 · n_clusters clusters each read their own ``k_i + 2`` leading columns. Capped by the
    rank r of the approximation.

    Parameters
    ----------
    affinity : str
        The estimator's ``affinity`` (a callable counts as a kernel).
    n_clusters : int
        Number of clusters.
    rank : int
        Rank r of the Nyström approximation.
    assign_labels : str or estimator, default='kmeans'
        The estimator's ``assign_labels``: only ``'consensus'`` and a ``ConsensusKMeans``
        change the width.

    Returns
    -------
    int

    Examples
    --------
    >>> from spectral_core import embedding_width
    >>> embedding_width("nearest_neighbors", 10, 500), embedding_width("rbf", 10, 500)
    (12, 10)
    >>> embedding_width("nearest_neighbors", 10, 500, "consensus")
    62
    """
    if _is_consensus(assign_labels):
        return min(CONSENSUS_MAX_FACTOR * n_clusters + GRAPH_EXTRA_EIGENVECTORS, rank)
    if affinity == "nearest_neighbors":
        return min(n_clusters + GRAPH_EXTRA_EIGENVECTORS, rank)
    return n_clusters


def _is_consensus(assign_labels: object) -> bool:
    """'consensus', or a ConsensusKMeans of the user's own settings (e.g. more members)."""
    if isinstance(assign_labels, str):
        return assign_labels == "consensus"
    from ._ensemble import ConsensusKMeans

    return isinstance(assign_labels, ConsensusKMeans)


@dataclass(frozen=True)
class EigenResult:
    """The eigenpairs of the approximate normalized affinity behind the embedding.

    Attributes
    ----------
    eigenvalues : ndarray (k,)
        Descending; the top one is ≈ 1 for a connected non-negative affinity.
    projection : ndarray (m, k)
        P = S R_k Σ_k^{-1/2}: the embedding of a row c of C with degree δ is (c/√δ) P.
    spectrum : ndarray (s,)
        The leading s = :func:`spectrum_size` (k, r) eigenvalues, descending, s ≥ k: what
        :func:`eigengap_n_clusters` reads. Its first k agree with ``eigenvalues`` (exactly
        for the dense solver, to the solvers' tolerance for the iterative ones).

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L, kernel = sample_landmarks(X, 30, random_state=0), make_kernel("rbf", gamma=0.5)
    >>> from spectral_core import eigendecompose, kernel_blocks
    >>> eigen = eigendecompose(kernel_blocks(X, L, kernel)[0], 3)
    >>> eigen.eigenvalues.shape, eigen.projection.shape, eigen.spectrum.shape
    ((3,), (30, 3), (20,))
    >>> bool(np.allclose(eigen.spectrum[:3], eigen.eigenvalues))
    True
    """

    eigenvalues: np.ndarray
    projection: np.ndarray
    spectrum: np.ndarray


def eigendecompose(
    summary: KernelSummary,
    n_vectors: int,
    *,
    eigen_solver: str | None = None,
    eigen_tol: float = 0.0,
    random_state: int | np.random.RandomState | None = None,
    n_spectrum: int | None = None,
) -> EigenResult:
    """Stage 3: the top ``n_vectors`` eigenpairs of G, and the projection P.

    Parameters
    ----------
    summary : KernelSummary
    n_vectors : int
        Columns of the embedding: :func:`embedding_width`.
    eigen_solver : {None, 'arpack', 'lobpcg', 'amg'}
        None: dense LAPACK (``scipy.linalg.eigh``); 'arpack': ``scipy.sparse.linalg.eigsh``;
        'lobpcg': ``scipy.sparse.linalg.lobpcg``; 'amg': LOBPCG preconditioned by pyamg's
        smoothed aggregation on the shifted Laplacian. An iterative solver that cannot handle
        the problem (lobpcg and amg: r < 5·k + 1; arpack: r ≤ k) is replaced by dense LAPACK
        with a :class:`SolverFallbackWarning`.
    eigen_tol : float
        Stopping tolerance of the iterative solvers; 0 means each solver's default.
    random_state : int, RandomState or None
        Seeds the iterative solvers' starting vectors.
    n_spectrum : int or None
        Leading eigenvalues to report in ``spectrum``; None: :func:`spectrum_size` (k, r).
        The estimator reports the plain k-means width's spectrum whatever ``assign_labels``
        widens the embedding to, so that the n_clusters suggestion reads the same values.

    Returns
    -------
    EigenResult
        Also the top :func:`spectrum_size` (k, r) eigenvalues (or ``n_spectrum``): from the
        same call for the dense solver, from one values-only ARPACK solve for the iterative
        ones.

    Examples
    --------
    >>> import numpy as np
    >>> from spectral_core import kernel_blocks, make_kernel, sample_landmarks
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> L = sample_landmarks(X, 30, random_state=0)
    >>> summary, _ = kernel_blocks(X, L, make_kernel("rbf", gamma=0.5))
    >>> eigen = eigendecompose(summary, 3)
    >>> eigen.projection.shape, bool(abs(eigen.eigenvalues[0] - 1) < 1e-6)
    ((30, 3), True)
    >>> eigen.spectrum.shape
    (20,)
    """
    G = summary.gram
    r, k = G.shape[0], n_vectors
    if k > r:
        raise ValueError(f"{k} eigenvectors exceed the rank {r} of the approximated affinity.")
    rng = check_random_state(random_state)
    solver = eigen_solver
    if (solver in ("lobpcg", "amg") and r < 5 * k + 1) or (solver == "arpack" and k >= r):
        # As scikit-learn's spectral_embedding does for a small graph, but said out loud.
        warnings.warn(
            f"eigen_solver={solver!r} cannot compute {k} eigenpairs of a {r} × {r} problem "
            f"(it needs {'r > k' if solver == 'arpack' else 'r ≥ 5·k + 1'}); using dense "
            "LAPACK (eigen_solver=None) instead.",
            SolverFallbackWarning,
            stacklevel=2,
        )
        solver = None
    n_spectrum = spectrum_size(k, r) if n_spectrum is None else min(int(n_spectrum), r)
    if solver is None:
        # The extra s − k eigenvectors cost O(r² (s − k)) after the O(r³) reduction to
        # tridiagonal form that every subset pays: the spectrum comes nearly free.
        sigma, R = linalg.eigh(G, subset_by_index=[r - max(n_spectrum, k), r - 1])
    elif solver == "arpack":
        from scipy.sparse.linalg import eigsh

        v0 = rng.uniform(-1, 1, r)
        sigma, R = eigsh(G, k=k, which="LA", tol=eigen_tol, v0=v0)
    elif solver == "lobpcg":
        from scipy.sparse.linalg import lobpcg

        X0 = rng.standard_normal((r, k))
        sigma, R = lobpcg(G, X0, largest=True, tol=eigen_tol or None, maxiter=2000)
    elif solver == "amg":
        sigma, R = _amg_eigs(G, k, eigen_tol, rng)
    else:  # validated by the estimator; kept for direct callers
        raise ValueError(f"Unknown eigen_solver {eigen_solver!r}.")
    order = np.argsort(sigma)[::-1]
    sigma, R = np.asarray(sigma)[order], np.asarray(R)[:, order]
    if solver is None:
        spectrum, sigma, R = sigma[:n_spectrum], sigma[:k], R[:, :k]
    else:
        spectrum = _leading_eigenvalues(G, n_spectrum, sigma, eigen_tol, rng)
    # Deterministic signs: the largest-magnitude entry of each eigenvector is positive.
    signs = np.sign(R[np.argmax(np.abs(R), axis=0), np.arange(k)])
    R = R * np.where(signs == 0, 1.0, signs)
    # G is PSD, so Σ ≥ 0 up to round-off; floor it so Σ^{-1/2} stays finite.
    safe = np.maximum(sigma, np.finfo(np.float64).eps * max(sigma.max(initial=0.0), 1.0))
    P = summary.normalizer @ (R / np.sqrt(safe))  # (m, k)
    return EigenResult(eigenvalues=sigma.copy(), projection=P, spectrum=spectrum.copy())


def _leading_eigenvalues(G: np.ndarray, s: int, sigma: np.ndarray, tol: float,
                         rng: np.random.RandomState) -> np.ndarray:
    """The top s eigenvalues of G, descending, next to an iterative solver's top k = len(sigma).

    Values only, in a Lanczos solve of its own, so that the solver the user chose computes
    the same k eigenvectors as without the spectrum (lobpcg and amg need r ≥ 5·s + 1 for s
    vectors, and their block size changes their iterates). ARPACK needs s < r − 1; a problem
    that small is solved densely.
    """
    r, k = G.shape[0], sigma.size
    if s <= k:
        return sigma[:s]
    if s >= r - 1:
        values = linalg.eigvalsh(G, subset_by_index=[r - s, r - 1])
    else:
        from scipy.sparse.linalg import eigsh

        values = eigsh(G, k=s, which="LA", tol=tol, v0=rng.uniform(-1, 1, r),
                       return_eigenvectors=False)
    return np.sort(values)[::-1]


def _amg_eigs(G: np.ndarray, k: int, tol: float, rng: np.random.RandomState):
    from scipy.sparse.linalg import lobpcg

    smoothed_aggregation_solver = import_pyamg().smoothed_aggregation_solver
    # Largest eigenpairs of G are the smallest of the PSD "Laplacian" c·I − G, c ≥ λ_max(G)
    # by Gershgorin, which is what an AMG preconditioner is built for.
    c = float(np.abs(G).sum(axis=1).max())
    L = sparse.csr_matrix(c * np.eye(G.shape[0]) - G)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sparse.SparseEfficiencyWarning)
        ml = smoothed_aggregation_solver(L)
    X0 = rng.standard_normal((G.shape[0], k))
    mu, R = lobpcg(L, X0, M=ml.aspreconditioner(), largest=False, tol=tol or None, maxiter=2000)
    return c - mu, R
