"""Every check of a run that needs no pass over the data, and the :class:`Job` it yields.

No Prefect here: ``spectral-flow`` runs :func:`build_job` before it starts a Prefect server,
so that a wrong path, column or parameter is refused in the time it takes to read the
Parquet footers (the ``plan`` task in :mod:`spectral_pipeline.tasks.planning` runs the same
function).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

import pyarrow as pa

import spectral_core as sc
from spectral_core.blocks import compute_dtype
from spectral_core.params import (
    PARAMETERS,
    check_n_samples,
    check_precomputed_shape,
    validate_params,
)

from .io import (
    FORMAT_VERSION,
    InputError,
    check_checkpoint_root,
    plan_dataset,
    stage_key,
)
from .job import DatasetPlan, Job, StageKeys, StageSeeds
from .storage import StorageError, Store, open_store, within


class TooFewRows(InputError):
    """The input has no more rows than ``n_components`` landmarks (which are rows of it).

    ``n_rows`` and the checked estimator parameters (``values``) let a caller say which of
    ``n_clusters <= n_components < n_rows`` the user should change.
    """

    def __init__(self, message: str, n_rows: int = 0, values: dict[str, Any] | None = None):
        super().__init__(message, "n_components")
        self.n_rows, self.values = n_rows, values or {}


#: Directories (or object-store prefixes) that input, output and checkpoint locations must lie
#: in, separated by os.pathsep (unset: no confinement, for a person running the CLI on their
#: own files). A URL root such as ``s3://bucket/prefix`` confines to that prefix.
ALLOWED_ROOTS_ENV = "SPECTRAL_ALLOWED_ROOTS"


def allowed_roots() -> list[Store]:
    tokens = [t for t in os.environ.get(ALLOWED_ROOTS_ENV, "").split(os.pathsep) if t]
    roots: list[str] = []
    for token in tokens:  # "s3://b/p" was split at its ":" by os.pathsep: join it again
        if roots and token.startswith("//") and re.fullmatch(r"[A-Za-z][\w+.-]*", roots[-1]):
            roots[-1] += ":" + token
        else:
            roots.append(token)
    return [open_store(r, what="allowed root") for r in roots]


#: The run parameter behind each location a check names (to name it on a command line).
_PARAMETER_OF = {"input": "input", "input file": "input", "output directory": "output_dir",
                 "checkpoint directory": "checkpoint_dir"}


def confine(location: str, what: str, storage_options: dict[str, Any] | None = None) -> Store:
    """The store of ``location`` (local paths resolved, symlinks too), refused unless it lies
    inside the configured roots (a glob: the directory its wildcards can reach)."""
    try:
        store = open_store(location, storage_options, what=what)
    except StorageError as exc:
        raise InputError(str(exc), _PARAMETER_OF.get(what)) from None
    roots = allowed_roots()
    reach = Store(_glob_base(store.url), store.options)
    if roots and not within(reach, roots):
        raise InputError(
            f"The {what} {location!r} resolves to {store.display()!r}, outside the allowed "
            f"roots {[r.display() for r in roots]} ({ALLOWED_ROOTS_ENV}). Use a location "
            "inside them.", _PARAMETER_OF.get(what))
    return store


def _glob_base(url: str) -> str:
    """The directory part of a glob before its first wildcard (what the glob can reach)."""
    for i, ch in enumerate(url):
        if ch in "*?[":
            return url[:i].rsplit("/", 1)[0] or "/"
    return url


def _check_access(store: Store, what: str) -> None:
    """Whether the run could write here, without writing anything (a refused run leaves no
    trace). Local disk: the nearest existing directory is one, and writable. Object stores:
    a listing, which proves the credentials and the bucket."""
    try:
        if store.is_local:
            path = store.root
            while not os.path.exists(path):
                path = os.path.dirname(path)
            if not os.path.isdir(path):
                raise NotADirectoryError(f"{path!r} is a file, not a directory")
            if not os.access(path, os.W_OK | os.X_OK):
                raise PermissionError(f"{path!r} is not writable")
        else:
            bucket = store.root.split("/", 1)[0]
            store.fs.ls(bucket, detail=False)
    except PermissionError as exc:
        raise InputError(
            f"The {what} {store.display()!r} cannot be accessed: {exc}. "
            + ("" if store.is_local else "Check the credentials in the environment (for S3: "
               "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and AWS_ENDPOINT_URL "
               "for a server other than AWS)."), _PARAMETER_OF.get(what)) from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"The {what} {store.display()!r} cannot be written: {exc}.",
                         _PARAMETER_OF.get(what)) from exc


def build_job(params: dict[str, Any], flow_run_id: str | None = None, *,
              hash_files: bool = True) -> Job:
    """Every check that needs no pass over the data, then the stage keys. Raises early.

    ``hash_files=False`` identifies local files by (size, mtime, inode) instead of a hash of
    their bytes: for checking a run only (the command line does, before it starts Prefect),
    since the keys of such a job do not tell rewritten files apart.
    """
    options = params.get("storage_options") or {}
    source = confine(params["input"], "input", options)
    output = confine(params["output_dir"], "output directory", options)
    checkpoints = confine(params["checkpoint_dir"], "checkpoint directory", options) \
        if params.get("checkpoint_dir") else output.child("checkpoints")
    p = validate_params({n: params[n] for n in PARAMETERS if n in params})
    sc.make_kernel(p["affinity"], gamma=p["gamma"], degree=p["degree"], coef0=p["coef0"],
                   kernel_params=p["kernel_params"], n_neighbors=p["n_neighbors"])
    if callable(p["affinity"]) or not isinstance(p["assign_labels"], str):
        raise InputError("The flow takes string affinities and assign_labels only.")
    _check_access(output, "output directory")
    _check_access(checkpoints, "checkpoint directory")
    try:  # only checked: nothing is written before validation
        check_checkpoint_root(checkpoints)
    except InputError as exc:
        exc.parameter = "checkpoint_dir" if params.get("checkpoint_dir") else "output_dir"
        raise
    plan = plan_dataset(source, params.get("feature_columns"), params.get("id_column"),
                        params["block_size"], fingerprints=checkpoints, hash_files=hash_files)
    if source.is_local:
        for f in plan.files:  # a symlink inside the roots may still point outside them
            confine(f.path, "input file")
    try:
        check_n_samples(plan.n_rows, p["n_components"])
    except ValueError as exc:
        raise TooFewRows(str(exc), plan.n_rows, p) from None
    check_precomputed_shape((plan.n_rows, plan.n_features), p["affinity"],
                            subject="The input (rows × feature columns)")
    schema = source_schema(source, plan)
    dtype = compute_dtype(schema.field(c).type.to_pandas_dtype() for c in plan.features).name
    seed = params.get("random_state")
    if seed is None:  # deterministic per dataset, so a rerun resumes and agrees
        seed = int(hashlib.sha256(plan.fingerprint.encode()).hexdigest()[:8], 16) % 2**31
    seeds = sc.stage_seeds(seed)
    kernel_id = {k: p[k] for k in ("affinity", "gamma", "degree", "coef0", "kernel_params",
                                   "n_neighbors")}
    keys: dict[str, str] = {}
    keys["sample_landmarks"] = stage_key(plan.fingerprint, plan.features, dtype,
                                         p["n_components"], p["landmarks"],
                                         p["affinity"] == "precomputed",
                                         seeds["sample_landmarks"])
    keys["kernel_blocks"] = stage_key(keys["sample_landmarks"], kernel_id)
    keys["eigendecompose"] = stage_key(keys["kernel_blocks"], p["n_clusters"],
                                       p["eigen_solver"], p["eigen_tol"],
                                       seeds["eigendecompose"])
    keys["embed"] = stage_key(keys["eigendecompose"])
    keys["assign_labels"] = stage_key(keys["embed"], p["assign_labels"], p["n_init"],
                                      p["kmeans_params"], seeds["assign_labels"])
    return Job(
        estimator={k: v for k, v in p.items() if k != "n_jobs"},
        plan=plan, checkpoint_url=checkpoints.url, output_url=output.url,
        storage_options=dict(options), dtype=dtype, random_state=params.get("random_state"),
        seed=seed, seeds=StageSeeds(**seeds), stage_keys=StageKeys(**keys),
        format_version=FORMAT_VERSION, flow_run_id=flow_run_id,
    )


def source_schema(source: Store, plan: DatasetPlan) -> pa.Schema:
    from .io import _parquet

    return _parquet(source, plan.files[0].path).schema_arrow
