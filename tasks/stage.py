"""A stage, declared once: its name, what its checkpoint key hashes, what it comes after.

A stage module writes its body as a function named like the stage and declares it::

    @stage(after=kernel_blocks, key=lambda k: (k.params.n_clusters, k.seeds.eigendecompose))
    def eigendecompose(run: StageRun) -> Done:
        ...

:func:`stage` registers it (the order of declaration is the order of the run: the stage list,
the keys of :class:`~spectral_pipeline.tasks.job.Job` and the flow's tasks all come from
:data:`REGISTRY`) and owns everything a stage does besides its body:

- its Prefect task, built on first use with :func:`task_options`, the same for every task of
  the pipeline (the same retry rule; Prefect keeps no result of its own);
- the manifest rule: a stage whose manifest exists returns at once, in a ``Cached`` state;
- its timing, its start, reuse and end log lines, and the capture of the warnings its body
  raises (logged on the run's page);
- the commit of its manifest, last, and the small reference the task returns;
- its key: a hash of the key of the stage it comes ``after`` (the input's fingerprint for the
  first) and of the inputs it declares, computed by :func:`stage_keys` when a run is planned.
  ``after`` is also the stage the run waits for before this one.

A library ``ValueError``/``TypeError`` raised inside a body (the library refuses a value, such
as a ``gamma`` whose kernel overflows on this data) leaves the task as an
:class:`~spectral_pipeline.tasks.errors.InputError`: the user's to fix. Any other error is not.

Nothing here imports Prefect until a task is built or run: the command line computes the keys
before a Prefect server exists.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from .checkpoints import (
    FORMAT_VERSION,
    MANIFEST,
    CheckpointWarning,
    CorruptCheckpoint,
    Manifest,
    Part,
    check_part,
    commit_manifest,
    read_manifest,
    stage_key,
    write_part,
)
from .errors import InputError, is_refusal
from .parallel import fan_out

if TYPE_CHECKING:
    from .job import DatasetPlan, EstimatorParams, Job, StageSeeds
    from .storage import Store

logger = logging.getLogger(__name__)

#: Retries of every task, for failures that can go away by themselves (tasks/retries.py).
RETRIES = 2
RETRY_DELAY_SECONDS = 1


def task_options(name: str) -> dict[str, Any]:
    """The options of every task of the pipeline (stages and the tasks around them)."""
    from prefect.cache_policies import NONE

    from .retries import retry_transient

    return {"name": name,
            # The manifest is the only record of completion: Prefect keeps no result.
            "cache_policy": NONE, "persist_result": False,
            "retries": RETRIES, "retry_delay_seconds": RETRY_DELAY_SECONDS,
            "retry_condition_fn": retry_transient}


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The run's logger inside a task or flow (its lines land on the run's page), else this
    module's."""
    from prefect.context import FlowRunContext, TaskRunContext

    if TaskRunContext.get() or FlowRunContext.get():
        from prefect import get_run_logger

        return get_run_logger()
    return logger


@dataclass(frozen=True)
class KeyInputs:
    """What a stage's key may hash: the plan, the estimator's parameters, the stage seeds, the
    output location."""

    plan: DatasetPlan
    params: EstimatorParams
    seeds: StageSeeds
    output_url: str


class Done(NamedTuple):
    """What a body returns: its parts, its result (small, JSON-able: it goes in the manifest
    and the reference), how many units of block work it computed, of how many (``work``:
    default, one per part)."""

    parts: list[Part]
    result: dict[str, Any]
    computed: int
    work: int | None = None


@dataclass(frozen=True, eq=False)
class Stage:
    """One declared stage (see the module docstring)."""

    name: str
    body: Callable[[StageRun], Done]
    key: Callable[[KeyInputs], tuple[Any, ...]]
    after: str | None
    #: Where its parts and manifest live; default ``<checkpoint_dir>/<key>/<stage>/``.
    where: Callable[[Job], Store] | None = None
    #: Its manifest's name in that folder.
    manifest_name: str = MANIFEST
    #: A check of its result against this run's parameters, fresh or reused (a reused
    #: validation of the input, for instance, made under another affinity).
    accept: Callable[[Job, dict[str, Any]], None] | None = None
    doc: str = field(default="", repr=False)

    def __post_init__(self):  # its documentation is its body's (the API reference shows it)
        object.__setattr__(self, "__doc__", self.doc)

    def store(self, job: Job) -> Store:
        """Its folder for this job (parts and manifest)."""
        if self.where is not None:
            return self.where(job)
        return job.checkpoints.child(job.stage_keys[self.name], self.name)

    def committed(self, job: Job) -> Manifest | None:
        """Its manifest for this job's key, if it is committed."""
        return read_manifest(self.store(job), self.name, job.stage_keys[self.name],
                             self.manifest_name)

    def manifest(self, job: Job) -> Manifest:
        """Its committed manifest, which a later stage needs: missing is a corrupt checkpoint
        (the flow then runs the stages again)."""
        manifest = self.committed(job)
        if manifest is None:
            raise CorruptCheckpoint(self.store(job), self.manifest_name, self.name,
                                    "the manifest is missing")
        return manifest

    @cached_property
    def task(self):
        """The Prefect task that runs the stage: ``task.submit(job)``."""
        from prefect import task

        return task(**task_options(self.name))(StageCall(self.name))

    def run(self, job: Job) -> Any:
        """The task's body: reuse, or run, time, capture warnings, commit, refer."""
        key, store, log = job.stage_keys[self.name], self.store(job), run_logger()
        manifest = read_manifest(store, self.name, key, self.manifest_name)
        if manifest is not None:
            log.info("%s: reused checkpoint %s", self.name, key)
            ref = reference(manifest, reused=True)
            if self.accept:
                self.accept(job, ref)
            from prefect.states import Completed

            return Completed(name="Cached", message=f"reused checkpoint {key}", data=ref)
        log.info("%s: started (key %s)", self.name, key)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                done = self.body(StageRun(self, job, key, store))
            except (ValueError, TypeError) as exc:
                refused = _as_input_error(exc)
                if refused is exc:  # not `from exc`: a cause of itself cannot be pickled
                    raise
                raise refused from exc
        for w in caught:
            log.warning("%s: %s", w.category.__name__, w.message)
        seconds = time.perf_counter() - start
        result = {**done.result, "work": len(done.parts) if done.work is None else done.work}
        manifest = commit_manifest(store, Manifest(
            stage=self.name, key=key, format_version=FORMAT_VERSION, parts=done.parts,
            result=result, seconds=seconds, flow_run_id=job.flow_run_id),
            self.manifest_name)
        log.info("%s: done in %.3f s (key %s)", self.name, seconds, key)
        ref = reference(manifest, reused=False, computed=done.computed)
        if self.accept:
            self.accept(job, ref)
        return ref


def _as_input_error(exc: BaseException) -> BaseException:
    """A library refusal (a ``ValueError``/``TypeError`` raised by ``spectral_core``) as the
    user's :class:`InputError`; anything else as it is."""
    from .retries import raised_by

    if is_refusal(exc) or not raised_by(exc, "spectral_core"):
        return exc
    return InputError(str(exc))


class StageCall:
    """The function of a stage's task: runs the stage of that name. Picklable by name, so a
    Dask worker process rebuilds it from its own import of the stage modules."""

    def __init__(self, name: str):
        self.name = self.__name__ = self.__qualname__ = name
        self.__doc__ = REGISTRY[name].doc if name in REGISTRY else None

    def __call__(self, job: Job) -> dict[str, Any]:
        from . import stages  # noqa: F401 (registers every stage, in order)

        return REGISTRY[self.name].run(job)

    def __reduce__(self):
        return (StageCall, (self.name,))


#: Every stage, in the order of the run (the order of declaration).
REGISTRY: dict[str, Stage] = {}


def stage(*, after: Stage | None, key: Callable[[KeyInputs], tuple[Any, ...]],
          where: Callable[[Job], Store] | None = None, manifest_name: str = MANIFEST,
          accept: Callable[[Job, dict[str, Any]], None] | None = None
          ) -> Callable[[Callable[[StageRun], Done]], Stage]:
    """Declare the decorated body as the stage of its name (see the module docstring).

    Parameters
    ----------
    after : Stage or None
        The stage it comes after (imported from its module, which declares it first); None
        for the first stage only. The flow's task for this stage waits for that one's.
    key : callable
        ``KeyInputs -> tuple``: the inputs its checkpoint key hashes, besides the key of the
        stage it comes after.
    where : callable, optional
        ``Job -> Store``: its folder, if not ``<checkpoint_dir>/<key>/<stage>/``.
    manifest_name : str
        Its manifest's name in that folder.
    accept : callable, optional
        ``(Job, reference) -> None``: a check of its result, fresh or reused, against this
        run; raises to refuse it.

    Returns
    -------
    callable
        The decorator, which returns the registered :class:`Stage`.
    """
    def declare(body: Callable[[StageRun], Done]) -> Stage:
        name = body.__name__
        if name in REGISTRY:
            raise RuntimeError(f"The stage {name!r} is declared twice.")
        if after is not None and list(REGISTRY)[-1:] != [after.name]:
            raise RuntimeError(f"The stage {name!r} must be declared right after "
                               f"{after.name!r}: stages run in the order they are declared.")
        if after is None and REGISTRY:
            raise RuntimeError(f"Only the first stage comes after no other ({name!r}).")
        declared = Stage(name=name, body=body, key=key,
                         after=None if after is None else after.name, where=where,
                         manifest_name=manifest_name, accept=accept,
                         doc=body.__doc__ or "")
        REGISTRY[name] = declared
        return declared

    return declare


def stage_keys(inputs: KeyInputs) -> dict[str, str]:
    """Every stage's checkpoint key, in order: each hashes the key of the stage before it (or
    the input's fingerprint) and the inputs the stage declares."""
    keys: dict[str, str] = {}
    for s in REGISTRY.values():
        upstream = keys[s.after] if s.after else inputs.plan.fingerprint
        keys[s.name] = stage_key(s.name, upstream, *s.key(inputs))
    return keys


def reference(manifest: Manifest, reused: bool, computed: int | None = None) -> dict[str, Any]:
    """What a stage task returns: small, JSON-able. ``parts`` counts the stage's units of
    block work (a block per pass), ``parts_computed`` those this run computed."""
    result = dict(manifest.result)
    work = result.pop("work", len(manifest.parts))
    return {"stage": manifest.stage, "key": manifest.key, "seconds": manifest.seconds,
            "parts": work, "parts_computed": 0 if reused else computed,
            "reused": reused, "flow_run_id": manifest.flow_run_id, **result}


@dataclass
class StageRun:
    """What a stage's body works with: the job, its key, its folder, and helpers that write
    and check its parts under that key."""

    stage: Stage
    job: Job
    key: str
    store: Store

    @property
    def name(self) -> str:
        """The stage's name."""
        return self.stage.name

    @property
    def log(self):
        """The run's logger (lines on the run's page)."""
        return run_logger()

    def write(self, name: str, arrays: dict[str, Any], **meta: Any) -> Part:
        """A part of this stage, tagged with its stage and key."""
        return write_part(self.store, name, arrays, stage=self.name, key=self.key, **meta)

    def valid_parts(self, names: list[str]) -> dict[str, Part]:
        """The parts already written and valid, judged from their footers alone (in parallel
        on the cluster: on an object store each check is a request). An invalid part is
        reported with a :class:`CheckpointWarning` naming it, and recomputed."""
        checked = fan_out(_check_one, names, self.store, {"stage": self.name, "key": self.key})
        for _, messages in checked:
            for message in messages:
                warnings.warn(message, CheckpointWarning, stacklevel=2)
        return {name: part for name, (part, _) in zip(names, checked, strict=True)
                if part is not None}

    def progress(self, what: str, *, reused: int = 0, total: int | None = None) -> Progress:
        """A progress artifact for one pass of this stage (see :class:`Progress`)."""
        return Progress(self.name, what, reused=reused, total=total)


def _check_one(name: str, store: Store, expect: dict[str, Any]
               ) -> tuple[Part | None, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        part = check_part(store, name, expect)
    return part, [str(w.message) for w in caught]


class Progress:
    """A Prefect progress artifact (and a log line) that moves as parts complete.

    It starts at the share of parts a resumed stage reused (and says how many), and carries a
    key per stage and pass, so the Artifacts page lists its history across runs. Updated at
    most once a second, and at the end: each update is an API round trip from the task's
    thread, and per-part updates cost ~0.2 s per pass at a million rows (measured).
    """

    INTERVAL = 1.0

    def __init__(self, stage: str, what: str, *, reused: int = 0, total: int | None = None):
        from prefect.artifacts import create_progress_artifact

        self.stage, self.what, self.reused = stage, what, reused
        key = re.sub(r"[^a-z0-9]+", "-", f"{stage} {what}".lower()).strip("-")
        note = f" ({reused}/{total} parts reused)" if reused and total else ""
        self.id = create_progress_artifact(
            progress=100.0 * reused / total if total else 0.0, key=key,
            description=f"{stage}: {what}{note}")
        self.last = time.monotonic()
        if reused and total:
            run_logger().info("%s: %s %d/%d parts reused", stage, what, reused, total)

    def __call__(self, done: int, total: int) -> None:
        from prefect.artifacts import update_progress_artifact

        now = time.monotonic()
        if now - self.last >= self.INTERVAL or done == total:
            done, total = done + self.reused, total + self.reused
            update_progress_artifact(self.id, progress=100.0 * done / total)
            self.last = now
            run_logger().info("%s: %s %d/%d parts", self.stage, self.what, done, total)
