"""The ``validate_input`` stage: one read pass over the input, before any kernel work.

Its key is the input's fingerprint alone, so a run with other parameters on the same data
reuses it; its result (rows, minimum) is checked against each run's own affinity.
"""

from __future__ import annotations

import itertools
from typing import Any

from spectral_core.params import check_nonnegative

from .checkpoints import check_checkpoint_root
from .dataset import check_block, duplicate_ids_in_bucket, remember_fingerprints
from .errors import InputError
from .job import DatasetPlan, Job
from .parallel import fan_out
from .stage import Done, StageRun, stage
from .storage import Store

#: Ids per bucket of the cross-block uniqueness check (about 8 bytes each, a few copies).
IDS_PER_BUCKET = 5_000_000


def _check_minimum(job: Job, result: dict[str, Any]) -> None:
    """chi2 and precomputed affinities need non-negative data (a reused validation may have
    been made for another affinity)."""
    try:
        check_nonnegative(result["min"], job.estimator.affinity, subject="The input")
    except ValueError as exc:
        raise InputError(str(exc), "input") from None


@stage(after=None, key=lambda k: (), accept=_check_minimum)
def validate_input(run: StageRun) -> Done:
    """Reads every block once: non-finite values (file, row, column), row counts, minimum.

    The one pass over the data before the stages; a refused input leaves no file behind.
    """
    job = run.job
    plan = job.plan
    results = fan_out(check_block, plan.blocks, plan, job.input)
    for r in results:
        block = plan.blocks[r["block"]]
        where = job.input.display() if len(plan.files) == 1 else plan.path(block)
        if "error" in r:
            raise InputError(f"The input file {where!r} changed while reading: "
                             f"{r['error']} in row groups {block.row_groups}.", "input")
        if "bad_row" in r:
            raise InputError(
                f"The input contains NaN or inf: file {plan.path(block)!r}, row "
                f"{r['file_row']} of that file (row {r['bad_row']} of the dataset), column "
                f"{r['column']!r} (value {r['value']}). Remove or impute those values "
                "first.", "input")
    if plan.id_column:
        check_ids(plan, job.input, [r["ids"] for r in results])
    result = {"rows": int(sum(r["rows"] for r in results)),
              "min": float(min(r["min"] for r in results))}
    _check_minimum(job, result)
    # The input is valid: from here on the run writes checkpoints.
    check_checkpoint_root(job.checkpoints, create=True)
    remember_fingerprints(plan, job.checkpoints)
    return Done(parts=[], result=result, computed=len(plan.blocks), work=len(plan.blocks))


def check_ids(plan: DatasetPlan, source: Store, blocks_ids: list[dict[str, Any]]) -> str:
    """Ids must be unique and present: the labels are joined back to the data on them.

    Without gathering them: each block reported its own repeats and its smallest and largest
    id. When no block repeats an id and the blocks' [smallest, largest] ranges do not overlap
    (ids that grow with the rows: the common case) that settles it; otherwise the ids are
    hashed into buckets of about :data:`IDS_PER_BUCKET` and each bucket is checked on a
    worker, reading only the id column. The flow process never holds the ids.

    Returns how it was settled: ``"ranges"`` or ``"buckets"`` (or raises).
    """
    if any(b["null"] for b in blocks_ids):
        raise InputError(f"The id column {plan.id_column!r} has missing values; ids must be "
                         "present on every row.", "id_column")
    ranges = sorted((b["lo"], b["hi"]) for b in blocks_ids if b["lo"] is not None)
    overlap = any(prev[1] >= cur[0] for prev, cur in itertools.pairwise(ranges))
    if not overlap and all(b["dup"] is None for b in blocks_ids):
        return "ranges"
    # Also when a block repeats an id: the error then counts it over the whole dataset.
    buckets = max(1, -(-plan.n_rows // IDS_PER_BUCKET))
    found = fan_out(duplicate_ids_in_bucket, range(buckets), buckets, plan, source)
    repeated = next((d for d in found if d is not None), None)
    if repeated is not None:
        value, count = repeated
        raise InputError(
            f"The id column {plan.id_column!r} has duplicated values (e.g. {value!r} appears "
            f"{count} times); ids must be unique so that the labels can be joined back to the "
            "data. Choose another id column or none (rows are then numbered).", "id_column")
    return "buckets"
