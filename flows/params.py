"""The flow's parameters: one pydantic model, rendered by the Prefect UI as a validated form.

The estimator's parameters are generated from ``spectral_core.params.PARAMETERS``, the table
the estimator itself validates with: the same names, defaults, types, bounds and choices (the
JSON-able ones: a callable affinity or a clusterer instance cannot travel as a run
parameter). Bounds and enumerations in the schema let the server reject a bad value before a
run exists; the rules between parameters are the estimator's own checks, run when the model
is built, with the estimator's messages.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Union

import annotated_types
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema

from spectral_core import make_kernel
from spectral_core.params import PARAMETERS, Param, ParameterError, validate_params
from spectral_pipeline.tasks.errors import InputError
from spectral_pipeline.tasks.job import EstimatorParams, RunRequest
from spectral_pipeline.tasks.storage import check_storage_options


class FormSchema:
    """Annotation marker: the JSON schema of a union, reshaped for the Prefect UI's form.

    Only the schema changes (what the server validates a run's parameters with and what the
    form renders), never what the flow accepts from Python or the CLI. The UI (Prefect 3.9)
    renders ``anyOf: [X, {type: null}]`` as a type toggle whose "None" branch, selected for a
    null default, hides the input behind a 'Property is type "None"' panel, and a
    ``const`` branch as "... is a const and cannot be changed". So:

    - a choice or None: one ``enum`` that includes null (a dropdown with a "None" option);
    - a dict or None: ``oneOf`` object/null, which the form shows as a JSON editor;
    - anything else or None: the value's branch first, then null (``type: null``): the form
      shows Prefect's usual toggle between the value and None, on None for a null value.
      (A null branch without ``type: null`` would open on the input, but the form finds no
      branch for a null value then, and says so in the browser's console for each field.)
    - ``const: "auto"`` becomes ``enum: ["auto"]`` (a one-option dropdown);
    - bounds move into ``allOf``: the form merges ``allOf`` into the one input it shows, and
      the UI's check before Submit (``/ui/schemas/validate``) sees them there; it drops a
      top-level ``minimum`` on the way, so a bound left there fails only on Submit, as a toast
      instead of a message under the field.

    The server validates each of these as it did the original schema.
    """

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return form_schema(handler(core_schema))


def form_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The form's shape of one field's JSON schema (see :class:`FormSchema`)."""
    branches = schema.get("anyOf")
    if not branches:
        bounds = {key: schema[key] for key in _BOUNDS if key in schema}
        if not bounds:
            return schema
        rest = {key: value for key, value in schema.items() if key not in _BOUNDS}
        return {**rest, "allOf": [bounds]}
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    values = [_no_const(branch) for branch in branches if branch.get("type") != "null"]
    if len(values) == len(branches):
        return {**rest, "anyOf": values}
    if len(values) == 1 and "enum" in values[0]:
        return {**rest, "enum": [*values[0]["enum"], None]}
    if any(branch.get("type") == "object" for branch in values):
        return {**rest, "oneOf": [*values, {"type": "null"}]}
    return {**rest, "anyOf": [*values, {"type": "null", "enum": [None], "title": "None"}]}


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _no_const(branch: dict[str, Any]) -> dict[str, Any]:
    if "const" not in branch:
        return branch
    return {**{k: v for k, v in branch.items() if k != "const"}, "enum": [branch["const"]]}


class DaskOptions(BaseModel):
    """Where the tasks run: a local Dask cluster (default) or an existing scheduler."""

    # Fields titled by their names, like the flow's own parameters (pydantic's default title
    # would show "N Workers" in the run form beside snake_case names).
    model_config = ConfigDict(extra="forbid", field_title_generator=lambda name, _: name)

    address: Annotated[str | None, FormSchema()] = Field(
        None, description="Address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786. "
        "Empty: start a local cluster for the run.")
    n_workers: Annotated[int, Field(ge=1, le=256), FormSchema()] = Field(
        1, description="Local cluster: worker count. Range: 1 to 256.")
    threads_per_worker: Annotated[int, Field(ge=1, le=256), FormSchema()] = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="Local cluster: threads per worker. Range: 1 to 256.")
    processes: bool = Field(
        False, description="Local cluster: workers as separate processes (needs a Prefect "
        "server; the CLI starts a temporary one when none is configured).")

    @property
    def in_this_process(self) -> bool:
        """The stages run on threads of the flow's own process (a local cluster of threads)."""
        return not (self.address or self.processes)


class _RunParams(BaseModel):
    """The data side of a run: where it reads and writes, and how it cuts the work."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(..., description="A Parquet file, a directory of Parquet files, or a "
                       "glob such as data/*.parquet: a path or a URL (s3://, gs://, abfs://, "
                       "az://, memory://).")
    output_dir: str = Field("spectral-output", description="Where labels/, embedding/ (Parquet "
                            "datasets) and summary.json are written: a path or a URL.")
    checkpoint_dir: str | None = Field(
        None, description="Checkpoint root, a path or a URL (default: the folder "
        "'checkpoints' in output_dir). Reruns with the same input and parameters resume "
        "from it.")
    feature_columns: list[str] | None = Field(
        None, description="Feature columns; default: every numeric column except the id.")
    id_column: str | None = Field(None, description="Column copied to labels/ as the "
                                  "row id; default: the row number, as 'row'.")
    block_size: int = Field(65_536, ge=1, description="Rows per block of work (consecutive "
                            "Parquet row groups are grouped up to this many rows).")
    storage_options: dict[str, Any] | None = Field(
        None, description="Non-secret fsspec options for the URLs above (e.g. {\"anon\": true} "
        "or a region). Credentials come from the environment (AWS_*, GOOGLE_*, AZURE_*), "
        "never from here.")

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        check_storage_options(value)
        return value

    _clean: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _estimator_rules(self):
        # The estimator's own checks and messages (a ParameterError names the parameter).
        clean = validate_params(self.estimator_params())
        try:  # kernel_params against the affinity: a check that needs no data
            make_kernel(clean["affinity"], gamma=clean["gamma"], degree=clean["degree"],
                        coef0=clean["coef0"], kernel_params=clean["kernel_params"],
                        n_neighbors=clean["n_neighbors"])
        except ValueError as exc:
            raise InputError(str(exc), "kernel_params", value=self.kernel_params) from None
        self._clean = {k: v for k, v in clean.items() if k != "n_jobs"}
        return self

    def estimator_params(self) -> dict[str, Any]:
        """The keyword arguments of the equivalent ``SpectralClustering``."""
        return {name: getattr(self, name) for name in PARAMETERS}

    def request(self) -> RunRequest:
        """The run these parameters ask for, for the plan (validated here, not again)."""
        return RunRequest(
            input=self.input, output_dir=self.output_dir, checkpoint_dir=self.checkpoint_dir,
            feature_columns=self.feature_columns, id_column=self.id_column,
            block_size=self.block_size, storage_options=self.storage_options,
            estimator=EstimatorParams(**self._clean))


#: What a parameter means in the pipeline, where that differs from the estimator.
_PIPELINE_DOCS = {
    "random_state": "Seed. Empty: a seed derived from the input's fingerprint, so reruns on "
                    "the same data resume and agree.",
    "n_jobs": "Kept for parity with the estimator; in the flow, parallelism is the Dask "
              "cluster's.",
    "persist_embedding": "Also write the embedding, as the dataset embedding/.",
    # No '<' in a description: the UI renders it as Markdown, where '<name>' is an HTML tag.
    "n_components": "Number of landmarks (fewer than the input's rows).",
}


def _field(name: str, spec: Param) -> tuple[Any, Any]:
    """The model field for one estimator parameter: its JSON-able types, bounds and default."""
    options: list[Any] = []
    if "str" in spec.kinds:
        options.append(Literal[spec.choices])
    number = {"int": int, "real": float}
    for kind in ("int", "real"):
        if kind in spec.kinds:
            bounds: dict[str, Any] = {}
            if spec.low is not None:
                bounds["gt" if spec.low_open else "ge"] = spec.low
            if spec.high is not None and not isinstance(spec.high, str):
                bounds["le"] = spec.high
            options.append(Annotated[number[kind], Field(**bounds)] if bounds else number[kind])
            break  # an int parameter is not also offered as a float
    if "bool" in spec.kinds:
        options.append(bool)
    if "dict" in spec.kinds:
        options.append(dict[str, Any])
    if "none" in spec.kinds:
        options.append(None)
    annotation = options[0] if len(options) == 1 else Union[tuple(options)]  # noqa: UP007
    return annotation, Field(spec.default, description=_PIPELINE_DOCS.get(name, spec.doc))


SpectralParams = create_model(
    "SpectralParams",
    __base__=_RunParams,
    __doc__="Parameters of one spectral-clustering run.\n\n"
            "One field per parameter of the flow (the table in the documentation's 'flow "
            "parameters' page is generated from these fields); building the model applies "
            "the estimator's checks and the rules between parameters, with its messages.",
    __module__=__name__,
    **{name: _field(name, spec) for name, spec in PARAMETERS.items()},
    dask=(DaskOptions, Field(default_factory=DaskOptions, description="Dask cluster options.")),
)


# --------------------------------------------------------------------------------------------
# The flow's signature: the model's fields as flat top-level parameters
# --------------------------------------------------------------------------------------------
#
# Prefect merges a run's parameters with its deployment's defaults per top-level parameter. One
# ``params`` object would be replaced whole by a run that sets one field of it (and silently
# lose the deployment's configuration); flat parameters merge field by field. The signature is
# generated from the model, so the form, the REST schema, the CLI and the estimator keep one
# table; the model still validates the rules between parameters when the flow starts.

#: The parameters a run usually sets, first, in the order an operator thinks of them: the
#: data, how many clusters, the graph and its landmarks, the seed, the columns. Every other
#: field follows in the model's order (the run's storage, then the estimator's remaining
#: parameters in dask-ml's order, the Dask cluster last). The estimator itself keeps dask-ml's
#: signature order; this is only the order of the flow's parameters (its form, its ``Args``,
#: the command's flags and the documentation's table).
COMMON = ("input", "output_dir", "n_clusters", "affinity", "n_components", "landmarks",
          "n_neighbors", "gamma", "random_state", "id_column", "feature_columns")


def _order() -> list[str]:
    """The flow's parameters in the form's order: :data:`COMMON`, then the rest."""
    return [*COMMON, *(name for name in SpectralParams.model_fields if name not in COMMON)]


def _annotation(name: str) -> Any:
    """The field's type and bounds, with its JSON schema in the form's shape."""
    field = SpectralParams.model_fields[name]
    return Annotated[(field.annotation, *field.metadata, FormSchema())]


def _bounds_text(name: str) -> str:
    """The bounds of a numeric parameter in words, for the form's description: the UI shows
    descriptions, not the schema's minimum and maximum."""
    spec = PARAMETERS.get(name)
    if spec is not None:
        if spec.low is None:
            return ""
        low = f"> {spec.low}" if spec.low_open else f"≥ {spec.low}"
        high = "" if spec.high is None else f", ≤ {spec.high}"  # a name: another parameter
        return f" Range: {low}{high}."
    words = {annotated_types.Gt: ("gt", ">"), annotated_types.Ge: ("ge", "≥"),
             annotated_types.Le: ("le", "≤")}
    bounds = [f"{words[type(m)][1]} {getattr(m, words[type(m)][0])}"
              for m in SpectralParams.model_fields[name].metadata if type(m) in words]
    return f" Range: {', '.join(bounds)}." if bounds else ""


def flow_signature(return_annotation: Any = dict[str, Any]):
    """The ``inspect.Signature`` of the flow: one keyword parameter per model field, with the
    model's type (bounds included) and default; ``input`` is the one required parameter."""
    import inspect

    params = []
    for name in _order():
        field = SpectralParams.model_fields[name]
        default = inspect.Parameter.empty if field.is_required() else \
            field.get_default(call_default_factory=True)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=_annotation(name)))
    return inspect.Signature(params, return_annotation=return_annotation)


def flow_docstring(summary: str) -> str:
    """``summary`` and an ``Args:`` section (Prefect shows each line in the run form)."""
    lines = [summary, "", "Args:"]
    for name in _order():
        field = SpectralParams.model_fields[name]
        text = " ".join((field.description or "").split()) + _bounds_text(name)
        lines.append(f"    {name}: {text}")
    return "\n".join(lines) + "\n"


def flow_parameters(params: BaseModel) -> dict[str, Any]:
    """A validated model as the flow's keyword arguments (the inverse of the flow's own
    ``SpectralParams(**parameters)``)."""
    return {name: getattr(params, name) for name in _order()}


def refused_parameter(exc: BaseException, values: dict[str, Any]) -> BaseException:
    """The structured error behind a refusal: an :class:`InputError` or a library
    :class:`~spectral_core.params.ParameterError`, each naming its parameter (``None`` when no
    one parameter is to blame).

    ``exc``: a pydantic ``ValidationError`` from building :data:`SpectralParams` out of
    ``values``, or an error of the checks the run makes before it starts. For a value refused
    by the model's own field types or bounds, the estimator's check of the same value gives
    the error, in the estimator's words (pydantic's "Input should be greater than 0" names
    no parameter and no rule a user typed).
    """
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return exc
    error = exc.errors()[0]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ParameterError | InputError):  # a rule between parameters
        return cause
    loc = [str(part) for part in error["loc"]]
    name = ".".join(loc[:2]) if loc and loc[0] == "dask" else (loc[0] if loc else None)
    if name in PARAMETERS and name in values:
        try:
            validate_params({name: values[name], "n_components": values.get(
                "n_components", PARAMETERS["n_components"].default)})
        except ParameterError as own:
            if own.parameter == name:
                return own
    message = str(cause) if cause is not None else error["msg"]
    return InputError(message, name, value=values.get(name))
