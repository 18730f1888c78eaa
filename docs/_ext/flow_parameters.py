"""``flow-parameters``: the flow's parameters as one table, built from the code at build time.

The rows are the fields of :class:`spectral_pipeline.flows.params.SpectralParams` (the flow's
signature, the Prefect UI form and the command's flags all come from that model, and the
model's estimator fields from ``spectral_core.params.PARAMETERS``), so this page cannot drift
from what the flow accepts. ``:model: dask`` gives the table of ``DaskOptions`` instead.
Each flag is read from the ``spectral-flow run`` parser itself.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

HEADER = ("parameter", "flag", "type", "default", "range or choices", "description")


def _flags() -> dict[str, list[str]]:
    """Each destination of ``spectral-flow run`` and its option strings, from the parser."""
    from spectral_pipeline.flows.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags: dict[str, list[str]] = {}
    for action in sub.choices["run"]._actions:
        flags.setdefault(action.dest, []).extend(action.option_strings or [action.dest])
    return flags


def _type(annotation: Any) -> str:
    """The accepted JSON-able types of a field, in words."""
    from spectral_pipeline.flows.flags import flatten as _flatten

    kinds, literals = _flatten(annotation)
    words = {int: "int", float: "float", bool: "bool", str: "str", dict: "dict",
             list: "list of str", type(None): "None"}
    out = ["str" for _ in literals[:1]]
    out += [words.get(k, getattr(k, "__name__", str(k))) for k in
            (int, float, bool, str, dict, list, type(None)) if k in kinds]
    return " or ".join(dict.fromkeys(out))


def _range(name: str, field: Any) -> str:
    """Bounds and choices: from PARAMETERS for an estimator parameter, else the field's."""
    import annotated_types

    from spectral_core.params import PARAMETERS
    from spectral_pipeline.flows.flags import flatten as _flatten

    spec = PARAMETERS.get(name)
    parts = []
    if spec is not None:
        if spec.choices:
            parts.append(("one of " if len(spec.choices) > 1 else "")
                         + ", ".join(repr(c) for c in spec.choices))
        if spec.nonzero:
            parts.append("≠ 0 (-1: all cores)")
        elif spec.low is not None:
            low = f"> {_num(spec.low)}" if spec.low_open else f"≥ {_num(spec.low)}"
            high = "" if spec.high is None else f", ≤ {_num(spec.high)}"
            parts.append(("a number " if spec.choices else "") + low + high)
        return ", or ".join(parts)
    _, literals = _flatten(field.annotation)
    if literals:
        parts.append("one of " + ", ".join(repr(v) for v in literals))
    signs = {annotated_types.Gt: ("gt", ">"), annotated_types.Ge: ("ge", "≥"),
             annotated_types.Lt: ("lt", "<"), annotated_types.Le: ("le", "≤")}
    metadata = list(field.metadata)
    for arg in typing.get_args(field.annotation):
        metadata += list(getattr(arg, "__metadata__", ()))
    bounds = [f"{signs[type(m)][1]} {getattr(m, signs[type(m)][0])}" for m in metadata
              if type(m) in signs]
    if bounds:
        parts.append(", ".join(bounds))
    return "; ".join(parts)


def _num(value: Any) -> str:
    """A bound as written: 1, 0.5, 4294967295, or another parameter's name."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return "(see below)" if field.annotation.__name__ == "DaskOptions" else \
            "this machine's cores"
    return repr(field.default)


def rows(model: str = "flow") -> list[tuple[str, ...]]:
    """The table's rows: one per field of the model."""
    from spectral_pipeline.flows.params import DaskOptions, SpectralParams

    flags = _flags()
    out = []
    if model == "flow":  # the form's order
        from spectral_pipeline.flows.params import _order

        fields = {name: SpectralParams.model_fields[name] for name in _order()}
    else:
        fields = DaskOptions.model_fields
    for name, field in fields.items():
        dest = name if model == "flow" else f"dask.{name}"
        if name == "dask":
            flag = ", ".join(f for d, fs in flags.items() if d.startswith("dask.") for f in fs)
        elif name == "input":
            flag = "INPUT (positional)"
        else:
            flag = ", ".join(flags[dest])
        out.append((name, flag, _type(field.annotation) if name != "dask" else "object",
                    _default(field), _range(name, field),
                    " ".join((field.description or "").split())))
    return out


def _table(header: tuple[str, ...], body: list[tuple[str, ...]], ids: str) -> nodes.table:
    table = nodes.table(classes=["flow-parameters"], ids=[ids])
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in (12, 14, 10, 9, 18, 37):
        group += nodes.colspec(colwidth=width)
    head, tbody = nodes.thead(), nodes.tbody()
    group += head
    group += tbody
    for cells, parent in [(header, head), *((row, tbody) for row in body)]:
        row = nodes.row()
        for i, text in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            if i < 2 and parent is tbody and text:  # names and flags: code, one per flag
                for k, word in enumerate(text.split(", ")):
                    if k:
                        para += nodes.Text(", ")
                    para += nodes.literal(word, word)
            else:
                para += nodes.Text(text)
            entry += para
            row += entry
        parent += row
    return table


class FlowParameters(SphinxDirective):
    """``.. flow-parameters::`` (``:model: dask`` for the Dask options)."""

    has_content = False
    option_spec: typing.ClassVar = {"model": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        model = self.options.get("model", "flow")
        if model not in ("flow", "dask"):
            raise self.error(f"flow-parameters: :model: must be flow or dask, not {model!r}")
        return [_table(HEADER, rows(model), f"{model}-parameters-table")]


def setup(app):
    app.add_directive("flow-parameters", FlowParameters)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
