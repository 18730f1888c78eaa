"""Every stage of the pipeline, in the order of a run.

Importing this module declares them all (:data:`~spectral_pipeline.tasks.stage.REGISTRY`):
the stage list, the jobs' keys and the flow's tasks come from that one registry. Each stage is
declared in its own module, beside the inputs its key hashes::

    validate_input     tasks/validate.py    one read pass: NaN/inf, ids, the minimum
    sample_landmarks   tasks/landmarks.py   the m landmark rows
    kernel_blocks      tasks/kernel.py      pass 1 (degrees) and pass 2 (the Gram)
    eigendecompose     tasks/eigen.py       the small eigenproblem
    embed              tasks/embed.py       pass 3: the embedding, one part per block
    assign_labels      tasks/assign.py      the clusterer; labels numbered by first row
    write_outputs      tasks/outputs.py     <output>/labels/ (and embedding/)

Layout of a run's checkpoints (``<checkpoint_dir>/<key>/<stage>/``)::

    <key>/validate_input/_SUCCESS.json                     rows and minimum of the input
    <key>/sample_landmarks/landmarks.parquet
    <key>/kernel_blocks/pass1/part-000000.parquet ...       Cᵀ1 of each block
    <key>/kernel_blocks/weights.parquet                     S, t, s between the passes
    <key>/kernel_blocks/pass2/group-0000.parquet ...        Gram of each group of blocks
    <key>/kernel_blocks/gram.parquet
    <key>/eigendecompose/eigen.parquet
    <key>/embed/part-000000.parquet ...                     the row-normalized embedding
    <key>/assign_labels/part-000000.parquet ...             the clusterer's raw labels
    <key>/<stage>/_SUCCESS.json                             the manifest, written last

and ``write_outputs``'s manifest is ``<output>/_SUCCESS.json``.
"""

from __future__ import annotations

import spectral_core as sc

from .assign import assign_labels
from .eigen import eigendecompose
from .embed import embed
from .kernel import kernel_blocks
from .landmarks import sample_landmarks
from .outputs import write_outputs
from .stage import REGISTRY, Stage
from .validate import validate_input

#: The stages' names, in the order of a run.
STAGES: tuple[str, ...] = tuple(REGISTRY)

# The library's stages are the pipeline's, in the same order, between the input's validation
# and the outputs (spectral_core.STAGES is the library's own list; this checks, not copies).
if STAGES[1:-1] != sc.STAGES:
    raise RuntimeError(f"The pipeline's stages {STAGES} do not run the library's {sc.STAGES}.")

__all__ = ["STAGES", "Stage", "assign_labels", "eigendecompose", "embed", "kernel_blocks",
           "sample_landmarks", "validate_input", "write_outputs"]
