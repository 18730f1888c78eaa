"""The pipeline's errors, sorted by whose fault they are: the user's input, or not.

- :class:`InputError`: the input dataset, a path or a parameter cannot be used. It carries the
  run parameter it is about (``parameter``), the rule that was broken (``rule``) and the value
  given (``value``), so that a command line names the flag by the parameter's name, never by
  reading the message. The library's own parameter errors
  (:class:`spectral_core.params.ParameterError`) carry the same three fields.
- :class:`StoreUnavailable`: a store stopped answering (an outage, not a bad path): the run
  fails, and the same command resumes once the store is back.
- Anything else is ours (a bug, a corrupt checkpoint): never reported as the user's input.

:func:`is_refusal` is the one rule that says which errors are the user's.
"""

from __future__ import annotations

from typing import Any

#: ``value`` of an error that names no single value.
NO_VALUE: Any = None


class InputError(ValueError):
    """The input dataset, a location or a parameter cannot be used as given.

    ``parameter``: the run parameter the refusal is about (``"id_column"``,
    ``"output_dir"``, ``"n_components"`` ...), when there is one; ``rule``: the constraint it
    breaks, in words; ``value``: what was given. The message says all of it to a person.
    """

    def __init__(self, message: str, parameter: str | None = None, *, rule: str | None = None,
                 value: Any = NO_VALUE):
        super().__init__(message)
        self.parameter, self.rule, self.value = parameter, rule, value

    def __reduce__(self):  # picklable from Dask workers, with its fields
        return (_rebuild, (type(self), self.args[0], self.parameter, self.rule, self.value))


def _rebuild(cls, message, parameter, rule, value):
    exc = cls.__new__(cls)
    ValueError.__init__(exc, message)
    exc.parameter, exc.rule, exc.value = parameter, rule, value
    return exc


class StoreUnavailable(RuntimeError):
    """A store stopped answering for longer than the pipeline waits (an outage).

    Not the user's input, and not retried by the task either: the run fails with one line that
    names the store and says what to do; its checkpoints are intact, so the same command
    resumes once the store answers again.
    """

    def __init__(self, url: str, seconds: float, cause: BaseException | None = None):
        detail = f"{type(cause).__name__}, " if cause is not None else ""
        super().__init__(
            f"The store {url} is not answering ({detail}gave up after {seconds:.0f} s). "
            "Check that it is up and reachable, then run the same command again: the work "
            "already done is kept, and the run resumes from it.")
        self.url, self.seconds = url, seconds

    def __reduce__(self):
        return (_unavailable, (self.args[0], self.url, self.seconds))


def _unavailable(message: str, url: str, seconds: float) -> StoreUnavailable:
    exc = StoreUnavailable.__new__(StoreUnavailable)
    RuntimeError.__init__(exc, message)
    exc.url, exc.seconds = url, seconds
    return exc


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` refuses the user's input or parameters (the command's exit status 2).

    An :class:`InputError`, a library :class:`~spectral_core.params.ParameterError`, or the
    parameter model's ``ValidationError``. A ``ValueError`` of any other origin (a missing or
    corrupt checkpoint, a bug) is not: it is reported as the failure it is.
    """
    from pydantic import ValidationError

    from spectral_core.params import ParameterError

    return isinstance(exc, InputError | ParameterError | ValidationError)
