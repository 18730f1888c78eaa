"""Retry classification: the cluster's KeyError is transient, a missing column's is not."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral_pipeline.tasks import stages
from spectral_pipeline.tasks.errors import InputError
from spectral_pipeline.tasks.parallel import ClusterError
from spectral_pipeline.tasks.retries import is_transient, raised_by_distributed, retry_transient
from spectral_pipeline.tasks.stage import REGISTRY


def _raised(func):
    try:
        func()
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def _scheduler_key_error():
    """A real KeyError from Dask's scheduler: replicate a key it has forgotten."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        return _raised(lambda: client.sync(client.scheduler.replicate, keys=["forgotten-key"]))


@pytest.fixture(scope="module")
def scheduler_key_error():
    return _scheduler_key_error()


def test_a_key_error_raised_by_the_scheduler_is_transient(scheduler_key_error):
    exc = scheduler_key_error
    assert isinstance(exc, KeyError)
    assert raised_by_distributed(exc)
    assert is_transient(exc)


def test_a_key_error_for_a_missing_column_is_permanent(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"f0": [1.0, 2.0]}), path)
    exc = _raised(lambda: pq.read_table(path).column("f1"))
    assert isinstance(exc, KeyError)
    assert not raised_by_distributed(exc)
    assert not is_transient(exc)
    assert not is_transient(_raised(lambda: {"a": 1}["b"]))  # a KeyError of our own code


@pytest.mark.parametrize(("exc", "transient"), [
    (InputError("bad input"), False),
    (ValueError("bad value"), False),
    (TypeError("bad type"), False),
    (ImportError("no pyamg"), False),
    (ClusterError("part cancelled"), True),
    (OSError("connection reset"), True),
    (RuntimeError("worker lost"), True),
    (KeyboardInterrupt(), False),
])
def test_classification_by_type(exc, transient):
    assert is_transient(exc) is transient


class _State:
    def __init__(self, exc=None):
        self.exc = exc

    def result(self):
        if self.exc is not None:
            raise self.exc
        return 1


def test_retry_transient_is_the_stage_tasks_condition(scheduler_key_error):
    from spectral_pipeline.tasks import planning, summary

    tasks = [REGISTRY[name].task for name in stages.STAGES] + [planning.plan,
                                                                summary.write_report]
    assert [t.name for t in tasks] == [*stages.STAGES, "plan", "write_report"]
    for task in tasks:  # one rule for every task of the pipeline
        assert task.retry_condition_fn is retry_transient, task.name
        assert (task.retries, task.retry_delay_seconds) == (2, 1), task.name
    assert retry_transient(None, None, _State(scheduler_key_error))
    assert not retry_transient(None, None, _State(KeyError("f1")))
    assert not retry_transient(None, None, _State())  # a completed state is never retried
