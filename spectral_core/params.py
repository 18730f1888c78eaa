"""The parameters of :class:`~spectral_core.SpectralClustering`: one table, and its checks.

:data:`PARAMETERS` lists every constructor parameter with its default, accepted types, bounds
and a one-line description. The estimator validates with :func:`validate_params`; the Prefect
pipeline builds its parameter model (and so its UI form and command-line flags) from the same
table and calls the same checks when it plans a run, so a value is refused with the same
message everywhere. The ``check_*`` functions are the rules that need the data's shape or
minimum, shared the same way.
"""

from ._validation import (
    PARAMETERS,
    Param,
    ParameterError,
    ParameterTypeError,
    ParameterValueError,
    check_n_samples,
    check_nonnegative,
    check_precomputed_shape,
    validate_params,
)

__all__ = [
    "PARAMETERS",
    "Param",
    "ParameterError",
    "ParameterTypeError",
    "ParameterValueError",
    "check_n_samples",
    "check_nonnegative",
    "check_precomputed_shape",
    "validate_params",
]
