"""Which task failures are retried: the cluster's hiccups, never a bad input.

A stage task is retried when its failure could go away by itself: a lost worker, a closed
connection, a part the cluster cancelled, an I/O error. It is not retried when the input or the
parameters are wrong (``ValueError``, ``TypeError``, ``KeyError`` for a missing column, an
``ImportError``) or the numerics failed (``LinAlgError``): a retry would fail the same way.

``KeyError`` is both: it is what a missing column raises, and what Dask's client and scheduler
raise when a key is forgotten under them (a race between messages on different connections).
The traceback tells them apart: an exception raised inside ``distributed`` (the innermost frame
is in that package, on the client or, re-raised from an RPC, on the scheduler) is the cluster's.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from scipy.linalg import LinAlgError

#: Errors of the input, the parameters or the numerics: retrying cannot help.
PERMANENT = (ValueError, TypeError, LinAlgError, ImportError, KeyError)


def _innermost(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb


def raised_by(exc: BaseException, package: str) -> bool:
    """Whether ``exc`` was raised by ``package`` itself (``"distributed"``,
    ``"spectral_core"``).

    Judged by the module of the innermost frame, not its file: an error re-raised from a
    scheduler on another machine carries that machine's frames (rebuilt by tblib, which keeps
    each frame's ``__name__``), whose paths need not match this one's.
    """
    tb = _innermost(exc.__traceback__)
    if tb is None:
        return False
    module = tb.tb_frame.f_globals.get("__name__") or ""
    return module == package or module.startswith(package + ".")


def raised_by_distributed(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by Dask's ``distributed`` package itself."""
    return raised_by(exc, "distributed")


def is_transient(exc: BaseException) -> bool:
    """True for a failure worth retrying (see the module docstring)."""
    from .checkpoints import CorruptCheckpoint
    from .errors import StoreUnavailable

    if isinstance(exc, CorruptCheckpoint):  # the flow recomputes the part; a retry cannot
        return False
    if isinstance(exc, StoreUnavailable):  # already waited for: the run fails, to resume later
        return False
    if isinstance(exc, PERMANENT):
        return raised_by_distributed(exc)
    return isinstance(exc, Exception)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry transient failures only."""
    try:
        state.result()
    except BaseException as exc:  # classified below, not swallowed
        return is_transient(exc)
    return False
