"""The ``eigendecompose`` stage: the small eigenproblem, in the flow's process (m × m)."""

from __future__ import annotations

import numpy as np

import spectral_core as sc

from . import faults
from .checkpoints import read_part
from .job import Job
from .kernel import kernel_blocks, load_kernel_summary
from .stage import Done, StageRun, stage


@stage(after=kernel_blocks,
       key=lambda k: (k.params.n_clusters, k.params.eigen_solver, k.params.eigen_tol,
                      k.params.assign_labels == "consensus", k.seeds.eigendecompose))
def eigendecompose(run: StageRun) -> Done:
    """Reads gram.parquet and weights.parquet; writes eigendecompose/eigen.parquet.

    The library's :func:`spectral_core.eigendecompose`, in the flow's process (m × m).
    """
    job, p = run.job, run.job.estimator
    summary = load_kernel_summary(job)
    rank = summary.gram.shape[0]
    width = sc.embedding_width(p.affinity, p.n_clusters, rank, p.assign_labels)
    eigen = sc.eigendecompose(summary, width, eigen_solver=p.eigen_solver,
                              eigen_tol=p.eigen_tol, random_state=job.seeds.eigendecompose,
                              n_spectrum=sc.spectrum_size(
                                  sc.embedding_width(p.affinity, p.n_clusters, rank), rank))
    part = run.write("eigen.parquet", {"P": eigen.projection},
                     eigenvalues=eigen.eigenvalues.tolist(), spectrum=eigen.spectrum.tolist())
    faults.after_part(run.name)
    # The leading eigenvalues past the embedding's width go in the reference (a few dozen
    # floats) for the summary's eigengap suggestion and the report's eigenvalue plot.
    return Done([part], {"eigenvalues": eigen.eigenvalues.tolist(),
                         "spectrum": eigen.spectrum.tolist()}, computed=1)


def load_eigen(job: Job) -> sc.EigenResult:
    """The committed eigendecompose stage's result (projection, eigenvalues), read back."""
    name = eigendecompose.name
    arrays, meta = read_part(eigendecompose.store(job), "eigen.parquet", stage=name,
                             expect={"key": job.stage_keys[name]})
    # A checkpoint written before the spectrum was recorded has only the kept eigenvalues.
    return sc.EigenResult(eigenvalues=np.asarray(meta["eigenvalues"]), projection=arrays["P"],
                          spectrum=np.asarray(meta.get("spectrum", meta["eigenvalues"])))
