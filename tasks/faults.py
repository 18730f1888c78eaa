"""Fault injection for the reliability tests (off unless SPECTRAL_INJECT_FAULT is set).

``SPECTRAL_INJECT_FAULT="<stage>:<parts>:<action>"``:

- ``kill``: once ``<parts>`` parts of ``<stage>`` are written, SIGKILL this process (a crash:
  nothing is cleaned up, as when a machine dies);
- ``raise``: once ``<parts>`` parts are written, every further part of the stage raises
  :class:`InjectedFault` before computing anything, on every attempt (a persistent failure);
- ``pause:<file>``: once ``<parts>`` parts are written, the stage's further parts wait before
  they start: the first one creates ``<file>``, and they all go on once a test deletes it
  (once per process). A test changes the world at a known point of a run (stops a store).

``SPECTRAL_INJECT_FAULT="@/path/file"`` reads the spec from that file while it exists, so a
test can turn a served deployment's fault off before retrying the failed run.
"""

from __future__ import annotations

import os
import signal
import threading
import time

_lock = threading.Lock()
_written: dict[str, int] = {}
_paused: set[str] = set()


class InjectedFault(RuntimeError):
    """A failure injected on purpose (treated as transient, like a lost worker)."""


def _spec(stage: str) -> tuple[int, str, str] | None:
    spec = os.environ.get("SPECTRAL_INJECT_FAULT")
    if spec and spec.startswith("@"):
        try:
            with open(spec[1:]) as fh:
                spec = fh.read().strip()
        except OSError:
            return None
    if not spec:
        return None
    target, parts, action, *arg = spec.split(":", 3)
    return (int(parts), action, arg[0] if arg else "") if target == stage else None


def before_part(stage: str) -> None:
    spec = _spec(stage)
    if spec is None or spec[1] not in ("raise", "pause"):
        return
    with _lock:
        due = _written.get(stage, 0) >= spec[0]
        first = due and spec[1] == "pause" and stage not in _paused
        if first:
            _paused.add(stage)
            open(spec[2], "w").close()
    if due and spec[1] == "raise":
        raise InjectedFault(f"fault injected in {stage} after {spec[0]} parts")
    while due and os.path.exists(spec[2]):
        time.sleep(0.05)


def after_part(stage: str) -> None:
    with _lock:
        _written[stage] = _written.get(stage, 0) + 1
        count = _written[stage]
    spec = _spec(stage)
    if spec and spec[1] == "kill" and count >= spec[0]:
        os.kill(os.getpid(), signal.SIGKILL)
