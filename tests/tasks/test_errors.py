"""Whose an error is: the user's input (a refusal, exit status 2 from the command) or ours."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from spectral_core.params import ParameterTypeError, ParameterValueError, validate_params
from spectral_pipeline.flows.params import SpectralParams
from spectral_pipeline.tasks import report
from spectral_pipeline.tasks.checkpoints import CorruptCheckpoint
from spectral_pipeline.tasks.errors import InputError, StoreUnavailable, is_refusal
from spectral_pipeline.tasks.preflight import build_job


def test_the_users_errors_are_refusals_and_name_their_parameter():
    with pytest.raises(ParameterValueError) as gamma:
        validate_params({"gamma": -1.0})
    with pytest.raises(ParameterTypeError) as clusters:
        validate_params({"n_clusters": "eight"})
    with pytest.raises(ValidationError) as model:
        SpectralParams(input="x", output_dir="y", block_size=0)
    refused = [gamma.value, clusters.value, model.value, InputError("no such column", "id_column")]
    assert all(is_refusal(exc) for exc in refused)
    assert (gamma.value.parameter, gamma.value.rule, gamma.value.value) == \
        ("gamma", "a float > 0", -1.0)
    assert clusters.value.parameter == "n_clusters"


def test_our_own_errors_are_never_refusals():
    from spectral_pipeline.tasks.storage import open_store

    ours = [CorruptCheckpoint(open_store("/tmp"), "_SUCCESS.json", "embed", "missing"),
            StoreUnavailable("s3://bucket", 12.0), ValueError("a bug"), KeyError("f0"),
            RuntimeError("a bug")]
    assert not any(is_refusal(exc) for exc in ours)
    assert not isinstance(ours[0], ValueError)  # not even by its class


def test_a_missing_checkpoint_is_a_corrupt_checkpoint_not_bad_input(tmp_path):
    """The report needs the assign_labels stage's manifest; without it the error is ours
    (the command reports it as a failure, never as the user's input: exit status 1)."""
    data = tmp_path / "data.parquet"
    X = np.random.default_rng(0).normal(size=(200, 2))
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1]}), data)
    job = build_job(SpectralParams(input=str(data), output_dir=str(tmp_path / "out"),
                                   n_clusters=2, n_components=10).request())
    with pytest.raises(CorruptCheckpoint, match=r"of stage 'embed' is corrupt \(the manifest "
                                                r"is missing\)") as missing:
        report.sample_embedding(job)
    assert not is_refusal(missing.value)
