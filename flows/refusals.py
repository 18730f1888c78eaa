"""How ``spectral-flow`` refuses a run: one line naming the flag the user typed (or its
default), the rule and the value, and exit status 2.

Only the user's errors are refused (:func:`~spectral_pipeline.tasks.errors.is_refusal`); each
carries the parameter it is about, so the flag is found by that name, never by reading the
message.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from spectral_core.params import PARAMETERS, ParameterError
from spectral_pipeline.tasks.preflight import TooFewRows

from .flags import flag
from .params import refused_parameter


def refuse(exc: BaseException, typed: dict[str, Any], verbose: bool) -> int:
    """Report a refused input or parameter as one line naming the flag; exit status 2."""
    if verbose:
        import traceback

        traceback.print_exception(exc)
    print(f"spectral-flow: {refusal_line(exc, typed)}", file=sys.stderr)
    return 2


def _shown(name: str, value: Any, typed: dict[str, Any]) -> str:
    """``--gamma -1.0`` as typed, or ``--n-components (default 100)``."""
    if name not in typed:
        return f"{flag(name)} (default {_text(value)})"
    return f"{flag(name)} {_text(typed[name])}"


def _text(value: Any) -> str:
    if value is None:
        return "''"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def refusal_line(exc: BaseException, typed: dict[str, Any]) -> str:
    """The one line that says what was refused, in terms of the flags the user typed.

    The error names its parameter (``parameter``: an :class:`InputError` or the library's
    :class:`~spectral_core.params.ParameterError`); the line names that parameter's flag and
    the value typed (or the default), then the rule, where another parameter the rule names
    is shown as its flag too.
    """
    if isinstance(exc, TooFewRows):
        return _too_few_rows(exc, typed)
    error = refused_parameter(exc, typed)
    name = getattr(error, "parameter", None)
    message = " ".join(str(error).split())  # one line
    if name is None or (name == "input" and "input" in typed):
        return message
    if isinstance(error, ParameterError):  # the constraint, with the other side as a flag
        def other(m: re.Match) -> str:
            return f"{flag(m[1])}={m[2]}" + ("" if m[1] in typed else " (the default)")

        names = "|".join(PARAMETERS)
        rule = re.sub(rf"\b({names})=([^\],) ]+)", other, " ".join(error.rule.split()))
        message = f"must be {rule}." + " ".join(error.fix.split())
    default = PARAMETERS[name].default if name in PARAMETERS else None
    return f"{_shown(name, typed.get(name, default), typed)}: {message}"


def _too_few_rows(exc, typed: dict[str, Any]) -> str:
    """n_clusters <= n_components < rows: name the typed side that breaks it."""
    rows, k, m = exc.n_rows, exc.n_clusters, exc.n_components
    if k >= rows:
        return (f"{_shown('n_clusters', k, typed)}: the input has only {rows} rows, so at most "
                f"{rows - 1} clusters (--n-clusters <= --n-components, the landmark rows, which "
                "must be fewer than the rows).")
    return (f"{_shown('n_components', m, typed)}: must be < the input's {rows} rows (it is the "
            f"number of landmark rows); use a value in [{k}, {rows - 1}] (at least "
            f"--n-clusters {k}).")
