"""``spectral-flow run``'s flags, generated from the parameter model: every parameter of the
flow is a flag, with its type, choices and default, and --help documents each one."""

from __future__ import annotations

import argparse
import json
import types
import typing
from typing import Any

from .params import DaskOptions, SpectralParams

_POSITIONAL = {"input"}
#: Options of the command itself, not parameters of the run.
NOT_PARAMETERS = ("command", "func", "verbose", "report")
RENAMED = {"output_dir": "output"}


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every field of :class:`SpectralParams` (and of its Dask options) to
    ``parser``, grouped as data, estimator and dask."""
    data = parser.add_argument_group("data")
    est = parser.add_argument_group("estimator (SpectralClustering's parameters)")
    dask = parser.add_argument_group("dask")
    for name, field in SpectralParams.model_fields.items():
        if name in _POSITIONAL or name == "dask":
            continue
        group = data if name in ("output_dir", "checkpoint_dir", "feature_columns",
                                 "id_column", "block_size") else est
        _add_flag(group, RENAMED.get(name, name), field, dest=name)
    for name, field in DaskOptions.model_fields.items():
        _add_flag(dask, f"dask_{name}" if name != "address" else "dask_address", field,
                  dest=f"dask.{name}")


def _add_flag(group, name: str, field, *, dest: str) -> None:
    flag = "--" + name.replace("_", "-")
    default = field.get_default(call_default_factory=True)
    helptext = (field.description or "") + f" (default: {default!r})"
    kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": helptext}
    types, literals = flatten(field.annotation)
    if types == {bool}:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    kwargs["type"] = _converter(types, literals)
    shown = [str(v) for v in literals] + [_TYPE_WORDS[t] for t in (int, float, dict, list, str)
                                          if t in types]
    kwargs["metavar"] = ("{" + ",".join(shown) + "}") if not types - {type(None)} else \
        "|".join(shown)
    if type(None) in types:
        kwargs["help"] += "; an empty value ('') means None"
    group.add_argument(flag, **kwargs)


_TYPE_WORDS = {int: "INT", float: "FLOAT", str: "TEXT", dict: "JSON", list: "A,B,..."}


def flatten(annotation) -> tuple[set[Any], list[Any]]:
    """The base types and the literal values an annotation accepts (through Union,
    Optional, Annotated and Literal)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return flatten(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return set(), list(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        kinds: set[Any] = set()
        literals: list[Any] = []
        for a in typing.get_args(annotation):
            k, lit = flatten(a)
            kinds |= k
            literals += lit
        return kinds, literals
    if annotation is None or annotation is type(None):
        return {type(None)}, []
    return {origin or annotation}, []


def _converter(kinds: set[Any], literals: list[Any]):
    """Text from the command line to a value of one of ``kinds`` or ``literals``, or a
    one-line ``ArgumentTypeError`` that says what was expected."""
    def convert(text: str) -> Any:
        if text == "" and type(None) in kinds:
            return None
        for literal in literals:
            if text == str(literal):
                return literal
        for kind in (int, float):
            if kind in kinds:
                try:
                    return kind(text)
                except ValueError:
                    pass
        if dict in kinds:
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(f"{text!r} is not valid JSON ({exc.msg} at "
                                                 f"character {exc.pos})") from None
            if not isinstance(value, dict):
                raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object")
            return value
        if list in kinds:
            return [c for c in text.split(",") if c]
        if str in kinds:
            return text
        expected = [repr(v) for v in literals] + [
            {int: "an int", float: "a number", type(None): "'' for None"}[k]
            for k in (int, float, type(None)) if k in kinds]
        raise argparse.ArgumentTypeError(
            f"{text!r} is not " + (expected[0] if len(expected) == 1 else
                                   ", ".join(expected[:-1]) + " or " + expected[-1]))
    convert.__name__ = "value"  # argparse names the converter in some messages
    return convert


def params_from_args(args: argparse.Namespace, **extra: Any) -> SpectralParams:
    """The parameter model from parsed flags (``extra`` overrides): its one validation on
    the command line."""
    values: dict[str, Any] = {}
    dask: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith("dask."):
            dask[key[5:]] = value
        elif key not in NOT_PARAMETERS:
            values[key] = value
    values.update(extra)
    if dask:
        values["dask"] = dask
    return SpectralParams(**values)


def values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters the user typed, by field name (Dask options as ``dask.<name>``)."""
    return {k: v for k, v in vars(args).items() if k not in NOT_PARAMETERS}


def flag(name: str) -> str:
    """The flag of a run parameter (``gamma`` → ``--gamma``, ``dask.n_workers`` →
    ``--dask-n-workers``, ``input`` → ``INPUT``)."""
    if name == "input":
        return "INPUT"
    if name.startswith("dask."):
        return "--dask-" + name[5:].replace("_", "-")
    return "--" + RENAMED.get(name, name).replace("_", "-")
