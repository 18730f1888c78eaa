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

import spectral_core as sc
from spectral_core.params import check_n_samples, check_precomputed_shape

from . import stages  # noqa: F401 (declares every stage: their keys are computed here)
from .checkpoints import FORMAT_VERSION, check_checkpoint_root
from .dataset import plan_dataset
from .errors import InputError
from .job import Job, RunRequest, StageSeeds
from .stage import KeyInputs, stage_keys
from .storage import StorageError, Store, open_store, within


class TooFewRows(InputError):
    """The input has no more rows than ``n_components`` landmarks (which are rows of it).

    ``n_rows``, ``n_clusters`` and ``n_components`` let a caller say which of
    ``n_clusters <= n_components < n_rows`` the user should change.
    """

    def __init__(self, message: str, n_rows: int, n_clusters: int, n_components: int):
        super().__init__(message, "n_components", rule=f"< the input's {n_rows} rows",
                         value=n_components)
        self.n_rows, self.n_clusters, self.n_components = n_rows, n_clusters, n_components

    def __reduce__(self):
        return (TooFewRows, (self.args[0], self.n_rows, self.n_clusters, self.n_components))


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


def confine(location: str, what: str, storage_options: dict | None = None) -> Store:
    """The store of ``location`` (local paths resolved, symlinks too), refused unless it lies
    inside the configured roots (a glob: the directory its wildcards can reach)."""
    try:
        store = open_store(location, storage_options, what=what)
    except StorageError as exc:
        raise InputError(str(exc), _PARAMETER_OF.get(what), value=location) from None
    roots = allowed_roots()
    reach = Store(_glob_base(store.url), store.options)
    if roots and not within(reach, roots):
        raise InputError(
            f"The {what} {location!r} resolves to {store.display()!r}, outside the allowed "
            f"roots {[r.display() for r in roots]} ({ALLOWED_ROOTS_ENV}). Use a location "
            "inside them.", _PARAMETER_OF.get(what), value=location)
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
            store.at(store.root.split("/", 1)[0]).names()  # the bucket's listing
    except PermissionError as exc:
        raise InputError(
            f"The {what} {store.display()!r} cannot be accessed: {exc}. "
            + ("" if store.is_local else "Check the credentials in the environment (for S3: "
               "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and AWS_ENDPOINT_URL "
               "for a server other than AWS)."), _PARAMETER_OF.get(what)) from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"The {what} {store.display()!r} cannot be written: {exc}.",
                         _PARAMETER_OF.get(what)) from exc


def build_job(request: RunRequest, flow_run_id: str | None = None, *,
              hash_files: bool = True) -> Job:
    """Every check that needs no pass over the data, then the stage keys. Raises early.

    ``request``'s parameters are validated already (the parameter model did it): here they
    meet the data. ``hash_files=False`` identifies local files by (size, mtime, inode)
    instead of a hash of their bytes: for checking a run only (the command line does, before
    it starts Prefect), since the keys of such a job do not tell rewritten files apart.
    """
    options = request.storage_options or {}
    p = request.estimator
    source = confine(request.input, "input", options)
    output = confine(request.output_dir, "output directory", options)
    checkpoints = confine(request.checkpoint_dir, "checkpoint directory", options) \
        if request.checkpoint_dir else output.child("checkpoints")
    _check_access(output, "output directory")
    _check_access(checkpoints, "checkpoint directory")
    try:  # only checked: nothing is written before validation
        check_checkpoint_root(checkpoints)
    except InputError as exc:
        exc.parameter = "checkpoint_dir" if request.checkpoint_dir else "output_dir"
        raise
    plan = plan_dataset(source, request.feature_columns, request.id_column,
                        request.block_size, fingerprints=checkpoints, hash_files=hash_files)
    if source.is_local:
        for f in plan.files:  # a symlink inside the roots may still point outside them
            confine(f.path, "input file")
    try:
        check_n_samples(plan.n_rows, p.n_components)
    except ValueError as exc:
        raise TooFewRows(str(exc), plan.n_rows, p.n_clusters, p.n_components) from None
    try:
        check_precomputed_shape((plan.n_rows, plan.n_features), p.affinity,
                                subject="The input (rows × feature columns)")
    except ValueError as exc:
        raise InputError(str(exc), "affinity", value=p.affinity) from None
    seed = p.random_state
    if seed is None:  # deterministic per dataset, so a rerun resumes and agrees
        seed = int(hashlib.sha256(plan.fingerprint.encode()).hexdigest()[:8], 16) % 2**31
    seeds = StageSeeds(**sc.stage_seeds(seed))
    keys = stage_keys(KeyInputs(plan=plan, params=p, seeds=seeds, output_url=output.url))
    return Job(
        estimator=p, plan=plan, checkpoint_url=checkpoints.url, output_url=output.url,
        storage_options=dict(options), random_state=p.random_state, seed=seed, seeds=seeds,
        stage_keys=keys, format_version=FORMAT_VERSION, flow_run_id=flow_run_id,
    )
