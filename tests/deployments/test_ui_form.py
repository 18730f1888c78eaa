"""The on-demand deployment's run form in the Prefect UI, rendered by a real headless Chromium
against the real server: every parameter usable, ranges shown, bad values flagged under their
field, and an untouched form producing a valid run with the defaults."""

import html
import json
import re

import pytest

from spectral_core.params import PARAMETERS
from spectral_pipeline.deployments.serve import RECOMMENDED
from spectral_pipeline.flows.params import DaskOptions, SpectralParams, _order

from ..browser import dump_dom, page
from .conftest import ON_THE_SERVER, api, deployment, wait_for_run

pytestmark = [pytest.mark.slow, ON_THE_SERVER]

#: What the form sends for fields left untouched, as seen when Submit was clicked (a null for
#: every nullable field; a dict field is a JSON editor whose value the UI sends as a
#: ``__prefect_kind: json`` placeholder that the server hydrates). The ``dask`` field sends
#: its default from the deployment's schema, which holds the serving machine's CPU count as
#: ``threads_per_worker`` (:func:`_untouched`).
UNTOUCHED = {"checkpoint_dir": None, "feature_columns": None, "id_column": None,
             "storage_options": {"__prefect_kind": "json", "value": "null"},
             "eigen_solver": None, "n_init": "auto", "gamma": 1, "eigen_tol": 0,
             "assign_labels": "consensus", "degree": 3, "coef0": 1, "block_size": 65536,
             "kernel_params": {"__prefect_kind": "json", "value": "null"},
             "kmeans_params": {"__prefect_kind": "json", "value": "null"},
             "persist_embedding": False, "n_jobs": 1}


def _untouched(dep):
    """:data:`UNTOUCHED`, and the ``dask`` default the form sends (from the schema)."""
    dask = dep["parameter_openapi_schema"]["properties"]["dask"]["default"]
    assert dask == DaskOptions().model_dump(), dask  # threads_per_worker: the CPU count
    return {**UNTOUCHED, "dask": dask}


def _form_url(server, dep):
    return f"{server['ui']}/deployments/deployment/{dep['id']}/run"


def _runs(server, dep):
    status, runs = api(f"{server['url']}/flow_runs/filter", "POST",
                       {"flow_runs": {"deployment_id": {"any_": [dep["id"]]}}})
    assert status == 200, runs
    return {run["id"]: run for run in runs}


def _text(dom):
    """The visible text of a dumped DOM, one element's text a line."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)
    return "\n".join(line.strip() for line in html.unescape(re.sub(r"<[^>]+>", "\n", dom))
                     .splitlines() if line.strip())


def test_every_parameter_has_a_usable_field(server, served):
    # The fields' descriptions are drawn after the form is shown.
    dom = dump_dom(_form_url(server, deployment(server)), ready=_FORM_SHOWN, still_s=1.0)
    text = _text(dom)
    assert "Parameters" in text, text[:2000]
    for name in _order():
        assert re.search(rf"^{name}( \(Optional\))?$", text, re.M), name
    for name in ("address", "n_workers", "threads_per_worker", "processes"):  # dask's
        assert re.search(rf"^{name}( \(Optional\))?$", text, re.M), name
    # A nullable field is Prefect's toggle between its value and None, on None when null.
    assert re.search(r'^checkpoint_dir \(Optional\)\n.*\nstr\nNone\nProperty is type "None"$',
                     text, re.M), text[text.find("checkpoint_dir"):][:300]
    assert "is a const and cannot be changed" not in text
    # eigen_solver: one dropdown, None (the default) selected.
    options = re.findall(r"<option[^>]*>([^<]*)</option>", dom)
    for solver in ("arpack", "lobpcg", "amg"):
        assert f'value="{solver}">{solver}</option>' in dom, solver
    assert re.search(r'<option [^>]*selected=""[^>]*>None</option>', dom), options
    assert re.search(r'<option [^>]*selected="" value="auto">auto</option>', dom)  # n_init
    # The deployment's recommended values are prefilled: the DOM shows a select's choice
    # (an input's typed value is a property, not an attribute, so it is not in the dump).
    for name in ("affinity", "landmarks", "assign_labels"):
        assert re.search(rf'<option [^>]*selected="" value="{RECOMMENDED[name]}">', dom), name
    # Ranges are visible in the descriptions.
    assert "Number of clusters. Range: ≥ 1, ≤ n_components." in text
    assert "Range: > 0." in text and "Range: 1 to 256." in text


def test_an_out_of_range_value_is_flagged_under_its_field(server, served):
    dep = deployment(server)
    before = _runs(server, dep)
    with page(_form_url(server, dep)) as tab:
        _wait_for_the_form(tab, "n_clusters")
        for name, value in (("n_clusters", "0"), ("gamma", "-1")):
            tab.evaluate(_type_into(name, value))
        _wait_for_the_model(tab, n_clusters=0, gamma=-1)
        tab.click_button("Submit")
        messages = tab.wait_for(
            "(() => { const m = [...document.querySelectorAll('.p-label__message')]"
            ".map(e => e.closest('.schema-form-property').querySelector("
            "'.schema-form-property__label').innerText + ': ' + e.innerText);"
            " return m.length >= 2 ? m : null; })()")
        assert "n_clusters (Optional): 0 is less than the minimum of 1" in messages, messages
        assert any(m.startswith("gamma (Optional): -1 ") for m in messages), messages
        assert tab.evaluate("location.pathname").endswith("/run")  # still on the form
    assert _runs(server, dep).keys() == before.keys()


def _field_js(label):
    """JavaScript: the form field titled ``label`` (its first word)."""
    return ("[...document.querySelectorAll('.schema-form-property')]"
            ".find(e => e.querySelector('.schema-form-property__label')?.innerText.trim()"
            f".split(' ')[0] === {json.dumps(label)})")


def _value_of(label):
    """JavaScript: the current value of the input of the field titled ``label``."""
    return f"{_field_js(label)}.querySelector('input, textarea').value"


#: JavaScript: the run form is shown, with Submit, and has filled in the deployment's values,
#: which it does after rendering (typing before that is overwritten).
_FORM_SHOWN = ("[...document.querySelectorAll('button')].some(b => b.innerText.trim() === "
               f"'Submit') && {_value_of('n_components')} === '500'")


def _wait_for_the_form(tab, field):
    """Until ``field`` is shown in the run form and the form is ready (:data:`_FORM_SHOWN`).
    Tests also check that what they typed reached the form's model."""
    tab.wait_for(f"document.body.innerText.includes({json.dumps(field)}) && {_FORM_SHOWN}")


#: JavaScript: the run form's values as the form holds them (its model, which Submit sends),
#: as JSON; null until the form is rendered. Read from the Vue component tree under #app:
#: the FlowRunCreateForm component passes them to its SchemaInput as the ``values`` prop.
_MODEL = """(() => {
  const find = (vnode, name, depth) => {
    if (!vnode || typeof vnode !== 'object' || depth > 5000) return null;
    const c = vnode.component;
    if (c) return c.type && c.type.__name === name ? c : find(c.subTree, name, depth + 1);
    if (vnode.suspense) return find(vnode.suspense.activeBranch, name, depth + 1);
    if (Array.isArray(vnode.children)) {
      for (const child of vnode.children) {
        const found = find(child, name, depth + 1);
        if (found) return found;
      }
    }
    return null;
  };
  const form = find(document.getElementById('app')._vnode, 'FlowRunCreateForm', 0);
  const input = form && find(form.subTree, 'SchemaInput', 0);
  return input ? JSON.stringify(input.props.values) : null;
})()"""


def _wait_for_the_model(tab, **values):
    """Until the form's model holds ``values`` (what typing into a field changes is the
    input's text first; Submit sends the model)."""
    want = json.dumps(values)
    tab.wait_for(f"(() => {{ const m = {_MODEL}; if (m === null) return false;"
                  f" const v = JSON.parse(m), w = {want};"
                  " return Object.keys(w).every(k => JSON.stringify(v[k]) ==="
                  " JSON.stringify(w[k])); })()")


def _wait_for_the_deployments_page(tab):
    """Until Submit has created the run and the UI moved on to the deployment's page; fails
    at once, with its text, on a message under a field or an error toast."""
    left = tab.wait_for(
        "!location.pathname.endsWith('/run') || [...document.querySelectorAll("
        "'.p-label__message'), ...[...document.querySelectorAll('.p-toast__card')]"
        ".filter(t => t.querySelector('.p-toast__icon--error'))].map(e => e.innerText)"
        ".join(' | ')")
    assert left is True, left  # no message under a field, no error toast


def _type_into(label, value):
    """JavaScript: type ``value`` into the input of the field titled ``label``."""
    return (f"(() => {{ const input = {_field_js(label)}.querySelector('input, textarea');"
            f" input.value = {json.dumps(value)};"
            " input.dispatchEvent(new Event('input', {bubbles: true})); return true; })()")


def test_an_untouched_form_starts_a_run_with_the_defaults(server, served, tmp_path):
    dep = deployment(server)
    before = _runs(server, dep)
    out = tmp_path / "out"
    with page(_form_url(server, dep)) as tab:
        _wait_for_the_form(tab, "output_dir")
        tab.evaluate(_type_into("output_dir", str(out)))  # the one field changed
        _wait_for_the_model(tab, output_dir=str(out))
        tab.click_button("Submit")
        _wait_for_the_deployments_page(tab)
    new = [run for rid, run in _runs(server, dep).items() if rid not in before]
    assert len(new) == 1, new
    params = new[0]["parameters"]
    assert params["output_dir"] == str(out)
    for name, value in {**RECOMMENDED, "input": dep["parameters"]["input"]}.items():
        assert params[name] == value, name
    model = SpectralParams(**params)
    for name, spec in PARAMETERS.items():
        if name not in RECOMMENDED:
            assert getattr(model, name) == spec.default, name
    assert model.checkpoint_dir is None and model.feature_columns is None
    final = wait_for_run(server["url"], new[0]["id"])
    assert final["state_type"] == "COMPLETED", served["log"].read_text()[-3000:]
    assert (out / "labels" / "_SUCCESS.json").exists()


def test_the_server_accepts_what_the_form_sends_for_untouched_fields(server, served, tmp_path):
    dep = deployment(server)
    # Scheduled far ahead: the server validates and stores it; the runner leaves it alone.
    status, run = api(f"{server['url']}/deployments/{dep['id']}/create_flow_run", "POST", {
        "parameters": {**_untouched(dep), "output_dir": str(tmp_path / "o")},
        "state": {"type": "SCHEDULED", "state_details": {
            "scheduled_time": "2100-01-01T00:00:00Z"}}})
    assert status == 201, run
    try:
        params = run["parameters"]
        assert params["storage_options"] is None and params["kernel_params"] is None
        model = SpectralParams(**params)
        for name, spec in PARAMETERS.items():
            if name not in RECOMMENDED:
                assert getattr(model, name) == spec.default, name
        assert model.storage_options is None and model.dask.address is None
    finally:
        api(f"{server['url']}/flow_runs/{run['id']}", "DELETE")


def test_the_reshaped_fields_take_a_value(server, served, tmp_path):
    """eigen_solver's dropdown, n_init's toggle to a number, gamma's toggle to None (and
    None picked in its dropdown)."""
    dep = deployment(server)
    before = _runs(server, dep)
    out = tmp_path / "out"
    with page(_form_url(server, dep)) as tab:
        _wait_for_the_form(tab, "eigen_solver")
        tab.evaluate(_type_into("output_dir", str(out)))
        tab.evaluate(f"(() => {{ const s = {_field_js('eigen_solver')}.querySelector('select');"
                      " s.value = 'lobpcg'; s.dispatchEvent(new Event('change', "
                      "{bubbles: true})); return true; })()")
        for label, choice in (("n_init", "int"), ("gamma", "None")):
            tab.evaluate(f"[...{_field_js(label)}.querySelectorAll('button')].find(b => "
                          f"b.innerText.trim() === {json.dumps(choice)}).click()")
        tab.wait_for(f"!!{_field_js('n_init')}.querySelector('input[type=number]')")
        tab.wait_for(f"{_field_js('gamma')}.innerText.includes('Property is type \"None\"')")
        tab.evaluate(_type_into("n_init", "4"))
        _wait_for_the_model(tab, output_dir=str(out), eigen_solver="lobpcg", n_init=4,
                            gamma=None)
        tab.click_button("Submit")
        _wait_for_the_deployments_page(tab)
    new = [run for rid, run in _runs(server, dep).items() if rid not in before]
    assert len(new) == 1, new
    params = new[0]["parameters"]
    assert (params["eigen_solver"], params["n_init"], params["gamma"]) == ("lobpcg", 4, None)
    final = wait_for_run(server["url"], new[0]["id"])
    assert final["state_type"] == "COMPLETED", served["log"].read_text()[-3000:]
