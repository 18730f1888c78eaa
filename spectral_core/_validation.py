"""Parameter and data checks, in one place and one message template.

Messages follow: ``The 'gamma' parameter of SpectralClustering must be a float > 0. Got -1.0
instead.`` -- TypeError for a wrong type, ValueError for a wrong value.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._kernels import AFFINITIES
from ._messages import import_pyamg
from ._utils import is_dask_array

OWNER = "SpectralClustering"
ASSIGN_STRINGS = ("kmeans", "sklearn-kmeans", "discretize", "cluster_qr", "consensus")


@dataclass(frozen=True)
class Param:
    """What one ``SpectralClustering`` parameter accepts; the table below is the only copy.

    ``kinds`` names the accepted types: ``'int'``, ``'real'``, ``'bool'``, ``'str'`` (one of
    ``choices``), ``'none'``, ``'dict'``, ``'callable'``, ``'estimator'`` (a clusterer
    instance) and ``'random_state'`` (a ``numpy.random.RandomState``). Numbers must lie in
    ``[low, high]`` (``low_open``: ``(low, high]``); ``high`` may name another parameter.
    The estimator's checks, the pipeline's parameter model (its UI form and bounds) and the
    command-line flags are all derived from this table.

    Examples
    --------
    >>> from spectral_core.params import PARAMETERS
    >>> gamma = PARAMETERS["gamma"]
    >>> gamma.default, gamma.kinds, gamma.describe()
    (1.0, ('real', 'none'), 'a float > 0 or None')
    """

    default: Any
    kinds: tuple[str, ...]
    doc: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    low_open: bool = False
    high: float | str | None = None
    nonzero: bool = False

    def describe(self) -> str:
        """The constraint in words, for a wrong value: "an int in the range [1, inf]", ..."""
        words = []
        for kind in self.kinds:
            if kind == "str":
                words.append(("one of " if len(self.choices) > 1 else "") + self._choices())
            elif kind in ("int", "real"):
                words.append(self._number(kind))
            else:
                words.append(_KIND_WORDS[kind])
        return _either(words)

    def type_words(self) -> str:
        """The accepted types in words, for a wrong type: "a float or None", ..."""
        words = [("a str among " + self._choices() if len(self.choices) > 1 else self._choices())
                 if kind == "str" else _KIND_WORDS[kind] for kind in self.kinds]
        return _either(words)

    def _choices(self) -> str:
        if len(self.choices) == 1:
            return repr(self.choices[0])
        return "{" + ", ".join(repr(c) for c in self.choices) + "}"

    def _number(self, kind: str, high: Any = None) -> str:
        name = _KIND_WORDS[kind]
        if self.nonzero:
            return f"{name} != 0 (-1 for all cores)"
        high = self.high if high is None else high
        if self.low is None and high is None:
            return name
        if high is None:
            return f"{name} {'>' if self.low_open else '>='} {self.low:g}"
        return f"{name} in the range [{'-inf' if self.low is None else f'{self.low:g}'}, {high}]"


_KIND_WORDS = {"int": "an int", "real": "a float", "bool": "a bool", "dict": "a dict",
               "callable": "a callable", "none": "None", "random_state": "a RandomState",
               "estimator": "a clusterer instance (with fit and get_params)"}


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


#: Every constructor parameter of ``SpectralClustering``: dask-ml's names and defaults, plus
#: ``landmarks``.
PARAMETERS: dict[str, Param] = {
    "n_clusters": Param(8, ("int",), "Number of clusters.", low=1, high="n_components"),
    "eigen_solver": Param(None, ("str", "none"), "Solver for the small eigenproblem; None: "
                          "dense LAPACK ('amg' needs the amg extra).",
                          choices=("arpack", "lobpcg", "amg")),
    "random_state": Param(None, ("int", "none", "random_state"), "Seed of the landmark choice, "
                          "the iterative solvers and the assignment.", low=0, high=2**32 - 1),
    "n_init": Param("auto", ("str", "int"), "KMeans initialisations; 'auto': 10 for "
                    "nearest_neighbors, 1 otherwise.", choices=("auto",), low=1),
    "gamma": Param(1.0, ("real", "none"), "Kernel coefficient of rbf, laplacian, chi2, "
                   "polynomial and sigmoid; None: the kernel's default (1 / n_features). Not "
                   "used by nearest_neighbors.", low=0, low_open=True),
    "affinity": Param("rbf", ("str", "callable"), "A scikit-learn pairwise kernel, "
                      "'nearest_neighbors' (the landmark graph: the accurate choice), "
                      "'precomputed', or a callable f(X, Y, **kw).", choices=AFFINITIES),
    "n_neighbors": Param(10, ("int",), "Landmarks each sample links to (nearest_neighbors).",
                         low=1),
    "eigen_tol": Param(0.0, ("real", "str"), "Tolerance of the iterative eigensolvers; 0 or "
                       "'auto' (scikit-learn's default): the solver's own.", low=0,
                       choices=("auto",)),
    "assign_labels": Param("kmeans", ("str", "estimator"), "How the embedding becomes labels; "
                           "'consensus' (a consensus of quick k-means on a 6k + 2-column "
                           "embedding) is steadier and more accurate on the k-NN graph.",
                           choices=ASSIGN_STRINGS),
    "degree": Param(3, ("real",), "Degree of the polynomial kernel.", low=0),
    "coef0": Param(1, ("real",), "Zero coefficient of the polynomial and sigmoid kernels."),
    "kernel_params": Param(None, ("dict", "none"), "Extra keyword arguments of a callable "
                           "affinity."),
    "n_jobs": Param(1, ("int", "none"), "Threads for in-memory block work; -1: all cores.",
                    nonzero=True),
    "n_components": Param(100, ("int",), "Number of landmarks (< n_samples).", low=1),
    "persist_embedding": Param(False, ("bool",), "Keep the embedding (embedding_ in the "
                               "estimator, embedding.parquet in the pipeline)."),
    "kmeans_params": Param(None, ("dict", "none"), "Extra parameters of the KMeans (or "
                           "clusterer) that assigns labels."),
    "landmarks": Param("random", ("str",), "'random': rows drawn uniformly (dask-ml's "
                       "choice); 'kmeans': centres of a short k-means on a capped sample.",
                       choices=("random", "kmeans")),
}


def _param(name: str, constraint: str, value: Any, *, owner: str = OWNER, fix: str = "") -> str:
    return f"The {name!r} parameter of {owner} must be {constraint}. Got {value!r} instead.{fix}"


class ParameterError(Exception):
    """A parameter refused: which one, the rule it breaks, the value given.

    The message is the one template of every parameter error; the fields let a caller (the
    pipeline's command line) name the parameter its own way without reading the message.
    Raised as :class:`ParameterValueError` (a ``ValueError``) or :class:`ParameterTypeError`
    (a ``TypeError``).

    Parameters
    ----------
    parameter : str
        The parameter's name, as in :data:`PARAMETERS`.
    rule : str
        The constraint it breaks, in words ("a float > 0").
    value : object
        The value given.
    fix : str, default=""
        A sentence that says how to fix it, appended to the message.

    Examples
    --------
    >>> from spectral_core.params import ParameterError, validate_params
    >>> try:
    ...     validate_params({"gamma": -1.0})
    ... except ParameterError as exc:
    ...     print(exc.parameter, "|", exc.rule, "|", exc.value)
    gamma | a float > 0 | -1.0
    """

    __module__ = "spectral_core.params"  # where it is public (and named in tracebacks)

    def __init__(self, parameter: str, rule: str, value: Any, fix: str = ""):
        super().__init__(_param(parameter, rule, value, fix=fix))
        self.parameter, self.rule, self.value, self.fix = parameter, rule, value, fix

    def __reduce__(self):
        return (type(self), (self.parameter, self.rule, self.value, self.fix))


class ParameterValueError(ParameterError, ValueError):
    """A value the parameter's type allows but its rule does not."""

    __module__ = "spectral_core.params"


class ParameterTypeError(ParameterError, TypeError):
    """A value of a type the parameter does not accept."""

    __module__ = "spectral_core.params"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_param(name: str, value: Any, *, high: Any = None) -> Any:
    """Check one parameter against :data:`PARAMETERS`; return its clean value or raise.

    ``TypeError`` when the type is not accepted at all, ``ValueError`` when the type is but
    the value is not. ``high``: the value of the parameter the upper bound names.
    """
    spec = PARAMETERS[name]
    kinds = spec.kinds
    if value is None:
        if "none" in kinds:
            return None
    elif isinstance(value, str):
        if "str" in kinds:
            if value in spec.choices:
                return value
            raise ParameterValueError(name, spec.describe(), value)
    elif isinstance(value, (bool, np.bool_)):
        if "bool" in kinds:
            return bool(value)
    elif _is_int(value) and ("int" in kinds or "real" in kinds):
        kind = "int" if "int" in kinds else "real"
        return _in_range(name, spec, kind, int(value) if kind == "int" else float(value), high)
    elif isinstance(value, numbers.Real) and "real" in kinds:
        return _in_range(name, spec, "real", float(value), high)
    elif isinstance(value, dict):
        if "dict" in kinds:
            return dict(value)
    elif isinstance(value, np.random.RandomState):
        if "random_state" in kinds:
            return value
    elif callable(value) and not isinstance(value, type) and "callable" in kinds:
        return value
    elif ("estimator" in kinds and not isinstance(value, type) and hasattr(value, "fit")
          and hasattr(value, "get_params")):
        return value
    raise ParameterTypeError(name, spec.type_words(), value)


def _in_range(name: str, spec: Param, kind: str, value: float, high: Any) -> float:
    if kind == "real" and not np.isfinite(value):
        raise ParameterValueError(name, "a finite float", value)
    bound = spec.high if high is None or not isinstance(spec.high, str) else high
    too_low = spec.low is not None and (value <= spec.low if spec.low_open else
                                        value < spec.low)
    too_high = bound is not None and not isinstance(bound, str) and value > bound
    if too_low or too_high or (spec.nonzero and value == 0):
        constraint = spec._number(kind, f"{spec.high}={bound}" if isinstance(spec.high, str)
                                  and high is not None else None)
        raise ParameterValueError(name, constraint, value)
    return value


def check_params(est) -> dict[str, Any]:
    """Validate every constructor argument of ``est``; return the clean values."""
    return validate_params(est.get_params(deep=False))


def validate_params(values: dict[str, Any]) -> dict[str, Any]:
    """Check parameter values (missing ones take their defaults) and the rules between them.

    The estimator calls this from ``fit``; the pipeline calls it when it plans a run, so both
    refuse the same values with the same messages.

    Parameters
    ----------
    values : dict
        Parameter names and values (a subset of :data:`PARAMETERS`).

    Returns
    -------
    dict
        Every parameter, with its clean value.

    Raises
    ------
    TypeError
        A value of a type the parameter does not accept.
    ValueError
        A value out of range, or two values that break a rule between them.

    Examples
    --------
    >>> from spectral_core.params import validate_params
    >>> validate_params({"n_clusters": 3})["n_components"]
    100
    >>> try:
    ...     validate_params({"gamma": -1.0})
    ... except ValueError as exc:  # a ParameterValueError, naming the parameter
    ...     print(exc)
    The 'gamma' parameter of SpectralClustering must be a float > 0. Got -1.0 instead.
    """
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise TypeError(f"{OWNER} got unexpected parameters {unknown}.")
    raw = {name: values.get(name, spec.default) for name, spec in PARAMETERS.items()}
    p: dict[str, Any] = {"n_components": check_param("n_components", raw["n_components"])}
    for name in PARAMETERS:
        if name != "n_components":
            p[name] = check_param(name, raw[name], high=p["n_components"])
    if p["eigen_solver"] == "amg":
        import_pyamg()
    if p["affinity"] == "nearest_neighbors" and p["n_neighbors"] > p["n_components"]:
        raise ParameterValueError("n_neighbors", f"an int in the range [1, n_components="
                                f"{p['n_components']}] (each sample links to its nearest "
                                "landmarks)", raw["n_neighbors"])
    if p["landmarks"] == "kmeans" and p["affinity"] == "precomputed":
        raise ParameterValueError("landmarks", "'random' when affinity='precomputed' (landmarks "
                                "must be rows of the affinity matrix)", raw["landmarks"])
    p["kernel_params"] = p["kernel_params"] or {}
    if p["eigen_tol"] == "auto":
        p["eigen_tol"] = 0.0
    p["kmeans_params"] = _check_kmeans_params(p["kmeans_params"], p["assign_labels"])
    return p


def _check_kmeans_params(value: dict[str, Any] | None, assign_labels: Any) -> dict[str, Any]:
    params = dict(value or {})
    if isinstance(assign_labels, str):
        if assign_labels in ("discretize", "cluster_qr", "consensus"):
            if params:
                raise ParameterValueError(
                    "kmeans_params", f"None or empty with assign_labels={assign_labels!r} "
                    "(it is applied to the KMeans or clusterer that assigns labels)", value)
            return params
        if not params:  # nothing to check: KMeans's parameters need scikit-learn's import
            return params
        from sklearn.cluster import KMeans

        valid = set(KMeans().get_params())
    else:
        valid = set(assign_labels.get_params())
    bad = sorted(set(params) - valid)
    if bad:
        raise ParameterValueError("kmeans_params", f"a dict whose keys are parameters of the "
                                f"label assigner; {bad} are not (valid: {sorted(valid)})",
                                value)
    return params


def check_n_samples(n_samples: int, n_components: int) -> None:
    """dask-ml's contract: fewer landmarks than rows (the landmarks are rows of X)."""
    if n_samples <= n_components:
        raise ParameterValueError("n_components", f"< n_samples={n_samples} (it is the number "
                                "of landmark rows)", n_components)


def check_precomputed_shape(shape: tuple[int, int], affinity: Any, *,
                            subject: str = f"X passed to {OWNER}") -> None:
    """A precomputed affinity is square: (n_samples, n_samples)."""
    if affinity == "precomputed" and shape[0] != shape[1]:
        raise ValueError(
            f"{subject} with affinity='precomputed' must be a square (n_samples, n_samples) "
            f"affinity matrix. Got shape {tuple(shape)} instead."
        )


def check_nonnegative(minimum: float, affinity: Any, *,
                      subject: str = f"X passed to {OWNER}") -> None:
    """chi2 kernels and a precomputed affinity need non-negative entries."""
    if minimum < 0 and affinity in ("precomputed", "chi2", "additive_chi2"):
        what = "affinity matrix" if affinity == "precomputed" else "data"
        raise ValueError(
            f"{subject} with affinity={affinity!r} must be non-negative (a negative {what} "
            f"entry makes degrees meaningless). Got a minimum of {minimum!r} instead."
        )


def check_array_input(X: Any, *, owner: str = OWNER) -> Any:
    """Return X as a 2-D float32/float64 numpy or row-chunked dask array, or raise.

    Checks type, dimensionality, emptiness and dtype here, all free; finiteness and the
    minimum come from :func:`data_stats` (for dask input that costs a pass over the data).
    """
    if hasattr(X, "columns") and hasattr(X, "dtypes"):  # a pandas or dask DataFrame
        non_numeric = [c for c, t in X.dtypes.items() if not _numeric_column(t)]
        if non_numeric:
            raise TypeError(
                f"X passed to {owner} must be numeric; columns {non_numeric[:5]!r} are not. "
                "Drop or encode them first."
            )
        if hasattr(X, "to_dask_array"):  # dask: row counts per partition, one cheap pass
            X = X.to_dask_array(lengths=True)
        else:
            X = X.to_numpy()
    if is_dask_array(X):
        if X.ndim != 2:
            raise ValueError(_shape_message(X.ndim, owner))
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise TypeError(f"X passed to {owner} must be numeric. Got dtype {X.dtype} instead.")
        if any(np.isnan(c) for c in X.chunks[0]):
            raise ValueError(
                f"X passed to {owner} has unknown chunk sizes. Call X.compute_chunk_sizes() "
                "first."
            )
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(_empty_message(X.shape, owner))
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})  # chunked by rows only; columns merged into one chunk
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        return X
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(
            f"X passed to {owner} must be dense; got a sparse matrix. Use X.toarray() when it "
            "fits in memory."
        )
    try:
        arr = np.asarray(X)
        if arr.dtype == object:
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"X passed to {owner} must contain only numbers; converting it failed: {exc}"
        ) from exc
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"X passed to {owner} must be numeric. Got dtype {arr.dtype} instead.")
    if np.iscomplexobj(arr):
        # ValueError, as scikit-learn raises for complex input.
        raise ValueError(f"X passed to {owner} must be real: Complex data not supported. Got "
                         f"dtype {arr.dtype} instead.")
    if arr.ndim != 2:
        raise ValueError(_shape_message(arr.ndim, owner))
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(_empty_message(arr.shape, owner))
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


def _numeric_column(dtype: Any) -> bool:
    """Numbers, booleans, or a categorical whose categories are numbers."""
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if isinstance(dtype, pd.CategoricalDtype):
        return is_numeric_dtype(dtype.categories.dtype)
    return is_numeric_dtype(dtype) or is_bool_dtype(dtype)


def _shape_message(ndim: int, owner: str) -> str:
    return (
        f"X passed to {owner} must be a 2-D array of shape (n_samples, n_features). Got a "
        f"{ndim}-D array instead. Reshape your data: X.reshape(-1, 1) for a single feature."
    )


def _empty_message(shape: tuple, owner: str) -> str:
    return (
        f"X passed to {owner} must have at least 1 sample and 1 feature. Got "
        f"{shape[0]} sample(s) and {shape[1]} feature(s) (shape={tuple(shape)}) while a minimum "
        "of 1 is required."
    )


def data_stats(X: Any) -> tuple[bool, float]:
    """(all finite?, minimum) of X, in one pass for dask input."""
    if is_dask_array(X):
        import dask
        import dask.array as da

        finite, low = dask.compute(da.isfinite(X).all(), X.min())
        return bool(finite), float(low)
    return bool(np.isfinite(X).all()), float(X.min())


def finite_error(X: Any, owner: str = OWNER) -> ValueError:
    """A message locating the first non-finite value (row, column)."""
    if is_dask_array(X):
        import dask.array as da

        rows_ok = np.asarray(da.isfinite(X).all(axis=1))
    else:
        rows_ok = np.isfinite(X).all(axis=1)
    where = ""
    if not rows_ok.all():
        row = int(np.argmin(rows_ok))
        col = int(np.argmin(np.isfinite(np.asarray(X[row]))))
        where = f" First at row {row}, column {col}."
    return ValueError(
        f"X passed to {owner} contains NaN or inf.{where} Remove or impute those values first."
    )
