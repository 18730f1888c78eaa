"""Fault injection for the reliability tests (off unless SPECTRAL_INJECT_FAULT is set).

``SPECTRAL_INJECT_FAULT="<stage>:<parts>:<action>"`` makes ``<stage>`` fail after ``<parts>``
of its parts are written: ``kill`` SIGKILLs the process (a crash: nothing is cleaned up),
``raise`` raises :class:`InjectedFault`. A test can then check that a rerun or a retry resumes.
The variable is read when a part finishes, so an operator can clear it before retrying.
"""

from __future__ import annotations

import os
import signal
import threading

_lock = threading.Lock()
_done: dict[str, int] = {}


class InjectedFault(RuntimeError):
    """A failure injected on purpose (treated as transient, like a lost worker)."""


def after_part(stage: str) -> None:
    spec = os.environ.get("SPECTRAL_INJECT_FAULT")
    if not spec:
        return
    target, parts, action = spec.split(":")
    if target != stage:
        return
    with _lock:
        _done[stage] = _done.get(stage, 0) + 1
        due = _done[stage] >= int(parts)
    if not due:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(f"fault injected in {stage} after {parts} parts")
