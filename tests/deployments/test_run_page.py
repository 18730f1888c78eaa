"""What an operator sees of a run triggered from the UI: the run graph draws the stages'
chain, the form starts with what people set and gives the browser nothing to warn about,
a rerun's stages read Cached, and the serve process's output carries no Dask chatter.

Each property is asserted through the API or the DOM; the screenshots (under pytest's
temporary folder, ``run-page-*.png``) are what a person would look at.
"""

import itertools
import json
import re

import pytest

from spectral_pipeline.flows.params import _order
from spectral_pipeline.tasks.stages import STAGES

from ..browser import page
from .conftest import ON_THE_SERVER, api, deployment

pytestmark = [pytest.mark.slow, ON_THE_SERVER]


def _task_runs(server, flow_run_id):
    status, runs = api(f"{server['url']}/task_runs/filter", "POST",
                       {"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}})
    assert status == 200, runs
    return runs


def test_the_run_graph_is_the_chain_of_stages(server, on_demand_runs, tmp_path_factory):
    first = on_demand_runs.first
    runs = {run["name"].rsplit("-", 1)[0]: run for run in _task_runs(server, first["id"])}
    stages = list(STAGES)
    assert stages[0] == "validate_input" and stages[-1] == "write_outputs", stages
    assert set(stages) <= set(runs), sorted(runs)
    # Each stage's task run names its predecessor's as an input: the edge Prefect draws.
    for before, after in itertools.pairwise(stages):
        upstream = {ref["id"] for refs in runs[after]["task_inputs"].values() for ref in refs
                    if ref.get("input_type") == "task_run"}
        assert runs[before]["id"] in upstream, (after, runs[after]["task_inputs"])
    # The graph the run page draws (the UI's own endpoint) has the same edges.
    status, graph = api(f"{server['url']}/flow_runs/{first['id']}/graph-v2")
    assert status == 200, graph
    parents = {node["label"].rsplit("-", 1)[0]: {p["id"] for p in node["parents"]}
               for node_id, node in graph["nodes"]}
    for before, after in itertools.pairwise(stages):
        assert runs[before]["id"] in parents[after], (after, parents[after])
    shot = tmp_path_factory.mktemp("shots") / "run-page-graph.png"
    with page(f"{server['ui']}/runs/flow-run/{first['id']}") as tab:
        tab.wait_for("document.body.innerText.includes('write_outputs')")
        tab.wait_until_still(2.0)  # the graph lays its nodes out after the page shows
        tab.screenshot(shot)
    assert shot.stat().st_size > 20_000


def test_a_rerun_reads_cached_everywhere(server, on_demand_runs):
    second = on_demand_runs.second
    runs = _task_runs(server, second["id"])
    states = {run["name"].rsplit("-", 1)[0]: run["state"]["name"] for run in runs}
    for name in STAGES:
        if name != "write_outputs":  # it writes this run's summary: it always runs
            assert states[name] == "Cached", states
    text = "\n".join(_logs(server, second["id"]))
    assert "validate_input: reused checkpoint" in text, text


def test_the_serve_output_has_no_dask_chatter(server, served, on_demand_runs):
    log = served["log"].read_text()
    assert "Finished in state Completed" in log, log[-3000:]  # the runs' lines are there
    # Prefect's console format: "06:35:18.929 | INFO    | distributed.scheduler - ...". Dask's
    # warnings and errors stay (a run failed on purpose by another test logs "Compute Failed").
    chatter = [line for line in log.splitlines()
               if re.search(r"\| (DEBUG|INFO)\s+\| distributed\.", line)
               or "jupyter-server-proxy" in line]
    assert not chatter, chatter[:10]


def test_the_form_starts_with_what_people_set_and_warns_of_nothing(server, served,
                                                                   tmp_path_factory):
    dep = deployment(server)
    shot = tmp_path_factory.mktemp("shots") / "run-page-form.png"
    with page(f"{server['ui']}/deployments/deployment/{dep['id']}/run") as tab:
        tab.wait_for("[...document.querySelectorAll('button')]"
                      ".some(b => b.innerText.trim() === 'Submit')")
        tab.wait_for("document.body.innerText.includes('threads_per_worker')")
        labels = tab.evaluate(
            "[...document.querySelectorAll('.schema-form-property__label')]"
            ".map(e => e.innerText.trim().split(' ')[0])")
        tab.screenshot(shot)
        console = list(tab.console)
    top = [label for label in labels if label in _order()]
    assert top == _order(), top
    assert _order()[:11] == ["input", "output_dir", "n_clusters", "affinity", "n_components",
                             "landmarks", "n_neighbors", "gamma", "random_state", "id_column",
                             "feature_columns"]
    for name in ("address", "n_workers", "threads_per_worker", "processes"):
        assert name in labels, labels  # the dask group's fields, named like the others
    warnings = [(kind, text) for kind, text in console if kind in ("warning", "error")]
    assert not warnings, json.dumps(warnings, indent=1)[:3000]


def _logs(server, flow_run_id):
    status, logs = api(f"{server['url']}/logs/filter", "POST",
                       {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200,
                        "sort": "TIMESTAMP_ASC"})
    assert status == 200, logs
    return [log["message"] for log in logs]


def test_the_stage_table_lists_every_stage_with_the_logs_part_counts(server, on_demand_runs,
                                                                     tmp_path_factory):
    first = on_demand_runs.first
    status, artifacts = api(f"{server['url']}/artifacts/filter", "POST", {
        "artifacts": {"flow_run_id": {"any_": [first["id"]]}, "type": {"any_": ["markdown"]}}})
    assert status == 200 and len(artifacts) == 1, artifacts
    table = {row[0]: row for row in (
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in artifacts[0]["data"].splitlines() if line.startswith("| "))
        if row[0] in ("plan", *STAGES)}
    assert list(table) == ["plan", *STAGES], table  # every task but the one writing it
    # The log's last progress line of each pass: "kernel_blocks: pass 1 (column sums) 3/3 parts".
    logged: dict[str, dict[str, str]] = {}
    for message in _logs(server, first["id"]):
        found = re.fullmatch(r"(\w+): (.+) (\d+/\d+) parts", message)
        if found:
            logged.setdefault(found[1], {})[found[2]] = found[3]
    assert set(logged["kernel_blocks"]) == {"pass 1 (column sums)", "pass 2 (Gram)"}, logged
    for stage, passes in logged.items():
        cell = table[stage][3]
        if len(passes) > 1:
            assert cell == ", ".join(f"{what} {n}" for what, n in passes.items()), (stage, cell)
        else:
            assert cell == next(iter(passes.values())), (stage, cell, passes)
    shot = tmp_path_factory.mktemp("shots") / "run-page-summary.png"
    with page(f"{server['ui']}/artifacts/artifact/{artifacts[0]['id']}") as tab:
        tab.wait_for("document.body.innerText.includes('write_outputs')")
        tab.screenshot(shot)
    assert shot.stat().st_size > 20_000
