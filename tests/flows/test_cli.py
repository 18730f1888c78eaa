"""`spectral-flow` end to end, on the embedded default (no server started by hand)."""

import os
import re
import signal
import subprocess
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spectral_core import SpectralClustering
from spectral_pipeline.flows.params import DaskOptions, SpectralParams

from .helpers import BIN, cli_env, current_api_url, run_args, run_cli


def test_help_documents_every_parameter(capsys):
    from spectral_pipeline.flows.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for name in SpectralParams.model_fields:
        if name in ("input", "dask"):
            continue
        flag = "--output" if name == "output_dir" else "--" + name.replace("_", "-")
        assert flag in text, flag
    for name in DaskOptions.model_fields:
        assert "--dask-" + name.replace("_", "-") in text


@pytest.mark.slow
def test_demo_on_digits(tmp_path):
    """The README's first command (`readme-demo`) on a fresh machine: a new PREFECT_HOME, so
    the command's server creates its database. Its `python3.11 -m venv .venv && .venv/bin/pip
    install -q -e .` part is what CI's own setup (.ci/run) has done before the tests; its
    demo part runs as written, in a folder whose `.venv` is this test environment. The
    getting-started page's `spectral-flow demo` is the same command, typed in the activated
    environment."""
    from ..docs.examples import block, run_bash, venv_link

    setup, demo = block("readme-demo").strip().rsplit(" && ", 1)
    assert setup == "python3.11 -m venv .venv && .venv/bin/pip install -q -e ."
    assert demo == ".venv/bin/spectral-flow demo"
    assert block("getting-started-demo").strip() == demo.removeprefix(".venv/bin/")
    folder = venv_link(tmp_path / "project")
    done = run_bash(demo, cwd=folder, env=cli_env(tmp_path, fresh_home=True))
    assert done.returncode == 0, done.stderr[-3000:]
    ari = float(done.stdout.rsplit("ARI against the true digits:", 1)[1].split()[0])
    assert ari >= 0.7
    out = folder / "spectral-demo"  # the demo's default output, in the working directory
    assert (out / "labels" / "_SUCCESS.json").exists() and (out / "summary.json").exists()
    labels = pq.read_table(out / "labels").to_pandas()
    assert len(labels) == 1797 and labels["label"].nunique() == 10


@pytest.mark.slow
def test_cli_run_end_to_end_with_worker_processes_sharing_one_local_server(blobs_data,
                                                                         tmp_path):
    """The whole command, as a user types it, with a copy of the report where asked, on the
    embedded default (no server started by hand) with --dask-processes: the command starts
    one Prefect server that every worker uses. (The default cluster of threads runs as a
    command in the README's demo and the documentation's examples.)"""
    data, X, _ = blobs_data
    out, copy = tmp_path / "out", tmp_path / "elsewhere" / "my-report.html"
    copy.parent.mkdir()
    code, stdout, err = run_cli(
        run_args(data, out, "--dask-processes", "--verbose", report=copy, dask_n_workers=2,
                 dask_threads_per_worker=1),
        cli_env(tmp_path))  # --verbose: Prefect's INFO lines, where a temporary server shows
    assert code == 0, err[-3000:]
    assert "database is locked" not in err
    assert "Starting temporary server" not in err  # no per-process temporary API servers
    for word in ("labels", "summary.json", "clusters", "kernel_blocks", "embed"):
        assert word in stdout
    assert copy.read_bytes() == (out / "report.html").read_bytes()
    assert f"report     {copy}" in stdout
    assert "suggested  n_clusters = 3 (its eigengap is " in stdout
    labels = pq.read_table(out / "labels").column("label").to_numpy()
    clean = SpectralClustering(n_clusters=3, gamma=0.1, n_components=50, random_state=0).fit(X)
    np.testing.assert_array_equal(labels, clean.labels_)


# --------------------------------------------------------------------------------------------
# Refusals: before Prefect starts, one line naming the flag, exit status 2
# --------------------------------------------------------------------------------------------


def _small_inputs(folder):
    """A 400-row dataset, a 10-row one and a 400-row one with a NaN at row 57 of 'f1'."""
    rng = np.random.RandomState(0)
    X = rng.rand(400, 3)
    paths = {}
    for name, rows, values in (("good", 400, X), ("ten", 10, X[:10]), ("nan", 400, X.copy())):
        if name == "nan":
            values[57, 1] = np.nan
        paths[name] = folder / name
        paths[name].mkdir(parents=True)
        pq.write_table(pa.table({"id": np.arange(rows), **{f"f{j}": values[:, j]
                                                           for j in range(3)}}),
                       paths[name] / "a.parquet", row_group_size=100)
    return paths


def _server_traces(tmp_path):
    """What a local Prefect server leaves when the command starts one: its log file in the
    command's TMPDIR (flows/server.py) and its database in PREFECT_HOME."""
    return sorted((tmp_path / "tmp").glob("prefect-server-*.log")) + \
        sorted((tmp_path / "prefect-home").glob("*.db"))


def _env(tmp_path, fresh_home=True, **extra):
    """A fresh PREFECT_HOME by default: a database there is a trace of a server."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return cli_env(tmp_path, fresh_home=fresh_home, TMPDIR=tmp_path / "tmp", **extra)


REFUSED = [
    ("input does not exist", lambda d: [str(d["good"].parent / "nope")],
     r"spectral-flow: The input '.*/nope' does not exist\."),
    ("missing feature column", lambda d: [str(d["good"]), "--feature-columns", "f0,f9"],
     r"spectral-flow: --feature-columns f0,f9: The feature columns \['f9'\] are not in the "
     r"input \(columns: \['id', 'f0', 'f1', 'f2'\]\)\."),
    ("--n-clusters 20 on 10 rows", lambda d: [str(d["ten"]), "--n-clusters", "20"],
     r"spectral-flow: --n-clusters 20: the input has only 10 rows, so at most 9 clusters "
     r"\(--n-clusters <= --n-components, .*\)\."),
    ("--gamma -1", lambda d: [str(d["good"]), "--gamma", "-1"],
     r"spectral-flow: --gamma -1\.0: must be a float > 0\."),
    ("bad JSON", lambda d: [str(d["good"]), "--kernel-params", "{bad"],
     r"spectral-flow: --kernel-params: '\{bad' is not valid JSON \(Expecting property name "
     r"enclosed in double quotes at character 1\) \(see spectral-flow run --help\)"),
]


def _main_in_process(argv, monkeypatch, capsys, api_url=None):
    """`spectral-flow ARGV` as ``main`` runs it, in this process: (status, stdout, stderr).

    Starting a local Prefect server fails the test (a refusal comes before one). The command's
    environment defaults are undone afterwards.
    """
    from spectral_pipeline.flows import cli, running
    from spectral_pipeline.flows.server import LocalServer

    for key, value in running._ENV_DEFAULTS.items():
        monkeypatch.setenv(key, os.environ.get(key, value))
    monkeypatch.delenv("SPECTRAL_PIPELINE_VERBOSE", raising=False)
    if api_url:
        monkeypatch.setenv("PREFECT_API_URL", api_url)
    else:
        monkeypatch.delenv("PREFECT_API_URL", raising=False)

    def no_server(self):
        raise AssertionError("a Prefect server was started for a refused run")

    monkeypatch.setattr(LocalServer, "launch", no_server)
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exited:  # argparse's own usage errors
        code = exited.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("name", "args", "line"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_in_one_line_before_prefect_starts(tmp_path, monkeypatch, capsys, name, args,
                                                   line):
    data = _small_inputs(tmp_path / "data")
    out = tmp_path / "out"
    code, stdout, err = _main_in_process(["run", *args(data), "--output", str(out)],
                                         monkeypatch, capsys)
    assert code == 2, err[-3000:]
    assert len(err.splitlines()) == 1, err[-3000:]
    assert re.fullmatch(line, err.strip()), err
    assert stdout == ""
    assert not out.exists()


@pytest.mark.slow
def test_a_refusal_is_one_line_from_the_installed_command(tmp_path):
    """The same refusal as above, from the installed command in its own process: one line,
    status 2, and no server (its log and database would be in TMPDIR and PREFECT_HOME)."""
    data = _small_inputs(tmp_path / "data")
    code, stdout, err = run_cli(["run", str(data["good"]), "--gamma", "-1", "--output",
                                 str(tmp_path / "out")], _env(tmp_path))
    assert (code, stdout, err) == (2, "", "spectral-flow: --gamma -1.0: must be a float > 0.\n")
    assert _server_traces(tmp_path) == []
    assert not (tmp_path / "out").exists()


def _spectral_runs() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(
            name=FlowFilterName(any_=["spectral-clustering"])), limit=200)


@pytest.mark.slow
def test_a_refusal_creates_no_flow_run_on_a_configured_server(tmp_path, monkeypatch, capsys):
    """With PREFECT_API_URL set (a real server): a parameter or path refusal makes no flow
    run; the NaN refusal, which needs a pass over the data, makes exactly one, says where the
    value is in one line and leaves no output or checkpoint behind."""
    data = _small_inputs(tmp_path / "data")
    api_url = current_api_url()
    before = len(_spectral_runs())
    for _, args, _ in REFUSED:
        code, _, err = _main_in_process(["run", *args(data), "--output", str(tmp_path / "o")],
                                        monkeypatch, capsys, api_url=api_url)
        assert code == 2, err[-3000:]
    assert len(_spectral_runs()) == before
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    code, stdout, err = run_cli(["run", str(data["nan"]), "--output", str(out),
                                 "--checkpoint-dir", str(ckpt), "--n-components", "20",
                                 "--n-clusters", "2"],
                                _env(tmp_path, PREFECT_API_URL=api_url))
    assert code == 2, err[-3000:]
    assert err.splitlines() == [
        f"spectral-flow: The input contains NaN or inf: file '{data['nan'] / 'a.parquet'}', "
        "row 57 of that file (row 57 of the dataset), column 'f1' (value nan). Remove or "
        "impute those values first."], err[-3000:]
    assert stdout == ""
    assert not out.exists() and not ckpt.exists()
    assert len(_spectral_runs()) == before + 1  # the query does see the command's runs


def test_verbose_shows_the_traceback(tmp_path, monkeypatch, capsys):
    data = _small_inputs(tmp_path / "data")
    code, _, err = _main_in_process(["run", str(data["good"]), "--gamma", "-1", "--verbose"],
                                    monkeypatch, capsys)
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == "spectral-flow: --gamma -1.0: must be a float > 0."


@pytest.mark.slow
def test_ctrl_c_during_the_run_is_one_line_and_exit_130(blobs_data, tmp_path):
    data, _, _ = blobs_data
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [str(BIN / "spectral-flow"), *run_args(data, out, block_size=100)],
        env=_env(tmp_path, fresh_home=False),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        # As from a terminal: SIGINT at its default. A process inherits an ignored SIGINT, and
        # Python then raises no KeyboardInterrupt at all; an earlier test in this pytest
        # process leaves it ignored (the run then went on to complete, exit 0).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        marker = out / "checkpoints" / "spectral-checkpoints.json"  # the input was validated
        deadline = time.monotonic() + 240
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the flow never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, err[-3000:]
    assert err.splitlines() == ["spectral-flow: interrupted"], err[-3000:]


def _interrupt_wrapped(args):
    """A Ctrl-C that a library turns into another error on its way up (pydantic did, when the
    signal landed while Prefect serialized a task's context)."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the signal's handler raises in this frame at once
    except KeyboardInterrupt:
        raise RuntimeError("Error calling function `_ser_model`: KeyboardInterrupt") from None
    raise AssertionError("no KeyboardInterrupt")


def _failing_run(args):
    raise RuntimeError("a bug, not a Ctrl-C")


@pytest.mark.parametrize("run, expected", [(_interrupt_wrapped, 130), (_failing_run, None)])
def test_a_ctrl_c_is_reported_whatever_error_it_became(run, expected, monkeypatch, capsys):
    from spectral_pipeline.flows import cli, running

    for key, value in running._ENV_DEFAULTS.items():  # main() sets these; undone after
        monkeypatch.setenv(key, os.environ.get(key, value))
    monkeypatch.setattr(cli, "_run", run)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        if expected is None:  # any other error still propagates, with its traceback
            with pytest.raises(RuntimeError, match="a bug"):
                cli.main(["run", "data"])
        else:
            assert cli.main(["run", "data"]) == expected
            assert capsys.readouterr().err == "spectral-flow: interrupted\n"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------------------------
# The same, in this process (no subprocess, no server)
# --------------------------------------------------------------------------------------------


def _checked(tmp_path, *args):
    """The flags parsed and checked as `spectral-flow run` does before it starts Prefect."""
    from spectral_pipeline.flows.cli import build_parser
    from spectral_pipeline.flows.flags import params_from_args
    from spectral_pipeline.tasks.preflight import build_job

    data = _small_inputs(tmp_path / "data")
    parsed = build_parser().parse_args(["run", str(data["good"]), "--output",
                                        str(tmp_path / "out"), *args])
    params = params_from_args(parsed)
    build_job(params.request(), hash_files=False)
    return params


def test_n_init_10_and_an_empty_eigen_solver_are_accepted(tmp_path):
    params = _checked(tmp_path, "--n-init", "10", "--eigen-solver", "", "--n-components", "20")
    assert params.n_init == 10
    assert params.eigen_solver is None  # dense LAPACK, as --help says
    assert not (tmp_path / "out").exists()


def test_a_usage_error_is_one_line(capsys):
    from spectral_pipeline.flows.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["run", "x", "--kernel-params", "[1, 2]"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "spectral-flow: --kernel-params: '[1, 2]' is not a JSON object (see spectral-flow run "
        "--help)"]


@pytest.mark.parametrize(("args", "line"), [
    (["--n-clusters", "200"], "--n-clusters 200: must be an int in the range "
     "[1, --n-components=100 (the default)]."),
    (["--affinity", "nearest_neighbors", "--n-components", "5"], "--n-clusters (default 8): "
     "must be an int in the range [1, --n-components=5]."),
    (["--block-size", "0"], "--block-size 0: Input should be greater than or equal to 1"),
    (["--dask-n-workers", "0"], "--dask-n-workers 0: Input should be greater than or equal "
     "to 1"),
])
def test_a_parameter_refusal_names_the_flag(tmp_path, args, line):
    from pydantic import ValidationError

    from spectral_pipeline.flows.cli import build_parser
    from spectral_pipeline.flows.flags import values_from_args
    from spectral_pipeline.flows.refusals import refusal_line

    parsed = build_parser().parse_args(["run", str(tmp_path), *args])
    with pytest.raises(ValidationError) as refused:
        _checked(tmp_path, *args)
    assert refusal_line(refused.value, values_from_args(parsed)) == line


def test_too_few_rows_for_the_default_n_components_names_it(tmp_path):
    from spectral_pipeline.flows.cli import build_parser
    from spectral_pipeline.flows.flags import values_from_args
    from spectral_pipeline.flows.params import SpectralParams
    from spectral_pipeline.flows.refusals import refusal_line
    from spectral_pipeline.tasks.preflight import TooFewRows, build_job

    data = _small_inputs(tmp_path / "data")
    parsed = build_parser().parse_args(["run", str(data["ten"]), "--n-clusters", "5"])
    values = values_from_args(parsed)
    with pytest.raises(TooFewRows) as refused:
        build_job(SpectralParams(**values).request(), hash_files=False)
    assert refusal_line(refused.value, values) == (
        "--n-components (default 100): must be < the input's 10 rows (it is the number of "
        "landmark rows); use a value in [5, 9] (at least --n-clusters 5).")


def test_flow_runs_on_the_commands_own_server_send_no_heartbeats():
    """On its own server the command turns Prefect's flow-run heartbeats off (nobody reads
    them there, and they hold the end of each run up to a second); a configured server keeps
    Prefect's setting (its default, 180 s)."""
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    from spectral_pipeline.flows.running import _no_heartbeats

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 180}):
        with _no_heartbeats(own_server=True):
            assert get_current_settings().flows.heartbeat_frequency is None
        with _no_heartbeats(own_server=False):
            assert get_current_settings().flows.heartbeat_frequency == 180
        assert get_current_settings().flows.heartbeat_frequency == 180
