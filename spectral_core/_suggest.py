"""The n_clusters suggestion: the largest eigengap the spectrum supports, or no clear choice."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._eigen import _check_spectrum

__all__ = ["NClustersSuggestion", "suggest_n_clusters"]

#: How many times larger than every other supported gap the largest one must be for the
#: suggestion to be called clear. Measured (docs/choosing-n-clusters.md): separated blobs
#: gave 7.4-1,069 (54 fits: 3, 5 and 7 blobs, rbf at four gammas, the k-NN graph), the
#: digits 1.0-3.7 (10 fits): 5 lies between the two.
CLEAR_GAP_RATIO = 5.0
#: Without a clear choice, the range spans the two largest gaps and every gap at least this
#: fraction of the largest.
RANGE_GAP_FRACTION = 0.5


@dataclass(frozen=True)
class NClustersSuggestion:
    """What the spectrum says about ``n_clusters``: one number when it is clear, else a range.

    Attributes
    ----------
    n_clusters : int or None
        The suggestion when it is clear, else None.
    clear : bool
        Whether the largest supported eigengap is at least ``ratio`` times every other one.
    best : int or None
        The k of the largest supported gap, clear or not (None without candidates).
    runner_up : int or None
        The k of the second largest supported gap.
    low, high : int or None
        The range a person should try when the choice is not clear: from the smallest to the
        largest k among the two largest gaps and every gap at least half the largest
        (``low == high == n_clusters`` when the choice is clear).
    ratio : float
        The clarity threshold the suggestion was judged with.
    candidates : tuple of int
        The k considered: 2 … ⌊s/2⌋ for s eigenvalues (see :func:`suggest_n_clusters`).
    curve : tuple of float
        The criterion for each candidate: the gap λ_k − λ_{k+1}.
    criterion : str
        ``'eigengap'``.

    Examples
    --------
    >>> from spectral_core import suggest_n_clusters
    >>> s = suggest_n_clusters([1.0, 0.99, 0.98, 0.5, 0.45, 0.4, 0.38, 0.35])
    >>> s.n_clusters, s.clear, s.describe()
    (3, True, 'n_clusters = 3 (its eigengap is 9.6× any other from 2 to 4)')
    >>> s.as_dict()["curve"]
    [0.010000000000000009, 0.48, 0.04999999999999999]
    """

    n_clusters: int | None
    clear: bool
    best: int | None
    runner_up: int | None
    low: int | None
    high: int | None
    ratio: float
    candidates: tuple[int, ...]
    curve: tuple[float, ...]
    criterion: str = "eigengap"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields (lists for the tuples), for a summary file."""
        out = asdict(self)
        out["candidates"], out["curve"] = list(self.candidates), list(self.curve)
        return out

    def describe(self) -> str:
        """One sentence for a person: the suggestion, or the range with no clear choice."""
        if self.best is None:
            return ("no n_clusters suggestion: the spectrum is too short to show a gap "
                    "(it needs at least 4 eigenvalues)")
        top = self.candidates[-1]
        if self.runner_up is None:
            return f"no clear choice: {self.best} is the only candidate"
        largest = self.curve[self.best - 2]
        other = self.curve[self.runner_up - 2]
        times = "∞" if other <= 0 else f"{largest / other:.1f}"
        if self.clear:
            return (f"n_clusters = {self.best} (its eigengap is {times}× any other from 2 to "
                    f"{top})")
        return (f"no clear choice between {self.low} and {self.high} (the largest eigengap, "
                f"at {self.best}, is {times}× the next, at {self.runner_up}; "
                f"{self.ratio:g}× would be clear)")


def suggest_n_clusters(
    spectrum: ArrayLike,
    *,
    max_clusters: int | None = None,
    ratio: float = CLEAR_GAP_RATIO,
) -> NClustersSuggestion:
    """Suggest ``n_clusters`` from the spectrum, or say that it shows no clear choice.

    The candidates are k = 2 … K with K = ⌊s/2⌋ for s eigenvalues λ₁ ≥ … ≥ λ_s of the
    normalized affinity (``SpectralClustering.spectrum_``), and their criterion is the gap
    λ_k − λ_{k+1}. The suggestion is the k of the largest gap when that gap is at least
    ``ratio`` times every other candidate's; otherwise there is no clear choice, and the
    range [low, high] spans the two largest gaps and every gap at least half the largest.

    Parameters
    ----------
    spectrum : array-like of shape (s,)
        Real, finite, descending (as ``SpectralClustering.spectrum_`` is).
    max_clusters : int or None, default=None
        Largest k considered, at most ⌊s/2⌋. None: ⌊s/2⌋.
    ratio : float, default=5.0
        How many times every other gap the largest must be to count as clear (> 1).

    Returns
    -------
    NClustersSuggestion

    Raises
    ------
    TypeError, ValueError
        As :func:`eigengap_n_clusters`, for the spectrum; ``max_clusters`` outside
        [2, ⌊s/2⌋] or ``ratio`` ≤ 1.

    Notes
    -----
    Why these choices (measured in benchmarks/accuracy.md, "The n_clusters suggestion"):

    - **k = 1 is not a candidate.** λ₁ is the trivial eigenvalue (1 for a connected
      affinity), and its gap λ₁ − λ₂ is large for any data with a loose structure.
    - **K = ⌊s/2⌋: a gap must be followed by as many computed eigenvalues as precede it.**
      The plain largest gap of the spectrum named 22 of 24 eigenvalues on digits (10
      classes): the tail of a Nyström spectrum from a few hundred landmarks decays in
      noisy steps, and its last gaps are as large as the true one. A fit computes
      s = max(2·w, 20) eigenvalues for w embedding columns, so K ≥ 10, and it grows with
      the ``n_clusters`` the fit was given.
    - **A margin.** Separated groups give one gap many times every other (blobs: 7.4× to
      1,069×); scikit-learn's digits gave 1.0-3.7×, the largest gap at 8, 11 or 12
      depending on the landmarks, never at 10. The suggestion there is "no clear choice
      between 8 and 12" or the like, which holds the truth.
    - **Criteria that were measured and not kept** (on a sample of the embedding: the
      landmarks, embedded with the leading s eigenvectors): Zelnik-Manor and Perona's
      rotation cost, the stability of k-means labels across sub-samples, and
      Calinski-Harabasz. Each was right less often than the eigengap on the blobs (the
      rotation cost ties k < c with c; stability and Calinski-Harabasz chose 2, 8 or 16
      on seven blobs with the k-NN graph), and none was right on the digits.

    References
    ----------
    von Luxburg (2007), A tutorial on spectral clustering, Statistics and Computing 17(4),
    section 8.3. Zelnik-Manor & Perona (2004), Self-tuning spectral clustering, NIPS.

    Examples
    --------
    >>> from spectral_core import suggest_n_clusters
    >>> suggest_n_clusters([1.0, 1.0, 0.99, 0.2, 0.15, 0.1, 0.08, 0.05]).n_clusters
    3
    >>> s = suggest_n_clusters([1.0, 0.98, 0.95, 0.88, 0.86, 0.8, 0.77, 0.74, 0.7, 0.66])
    >>> s.n_clusters, s.clear, (s.low, s.high)
    (None, False, (3, 5))
    >>> print(s.describe())  # doctest: +NORMALIZE_WHITESPACE
    no clear choice between 3 and 5 (the largest eigengap, at 3, is 1.2× the next,
    at 5; 5× would be clear)
    """
    where = "suggest_n_clusters"
    values = _check_spectrum(spectrum, where, min_size=1)
    s = values.size
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating, np.integer)):
        raise TypeError(f"The 'ratio' parameter of {where} must be a float > 1. Got "
                        f"{ratio!r} instead.")
    if not (math.isfinite(ratio) and ratio > 1):
        raise ValueError(f"The 'ratio' parameter of {where} must be a float > 1. Got "
                         f"{ratio!r} instead.")
    top = s // 2
    if max_clusters is not None:
        if isinstance(max_clusters, bool) or not isinstance(max_clusters, (int, np.integer)):
            raise TypeError(f"The 'max_clusters' parameter of {where} must be an int or "
                            f"None. Got {max_clusters!r} instead.")
        if not 2 <= max_clusters <= top:
            raise ValueError(f"The 'max_clusters' parameter of {where} must be in [2, {top}] "
                             f"(⌊s/2⌋ for s = {s} eigenvalues). Got {max_clusters!r} instead.")
        top = int(max_clusters)
    candidates = tuple(range(2, top + 1))
    if not candidates:
        return NClustersSuggestion(None, False, None, None, None, None, float(ratio), (), ())
    gaps = values[1:top] - values[2:top + 1]  # gaps[k - 2] = λ_k − λ_{k+1}, k = 2 … top
    gaps = np.maximum(gaps, 0.0)  # round-off swaps of equal eigenvalues
    order = np.argsort(-gaps, kind="stable")  # ties: the smaller k first
    best = candidates[order[0]]
    runner_up = candidates[order[1]] if len(candidates) > 1 else None
    largest = float(gaps[order[0]])
    others = float(gaps[order[1]]) if len(candidates) > 1 else 0.0
    # One candidate has nothing to be clearer than.
    clear = runner_up is not None and largest > 0 and largest >= ratio * others
    close = [best, *([runner_up] if runner_up is not None else []),
             *(k for k, g in zip(candidates, gaps, strict=True)
               if g >= RANGE_GAP_FRACTION * largest)]
    low, high = (best, best) if clear else (min(close), max(close))
    return NClustersSuggestion(
        n_clusters=best if clear else None, clear=bool(clear), best=best, runner_up=runner_up,
        low=low, high=high, ratio=float(ratio), candidates=candidates,
        curve=tuple(float(g) for g in gaps),
    )
