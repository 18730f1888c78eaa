"""The math layer never imports the orchestration layer."""

import json
import subprocess
import sys


def _loaded(statements: str, roots: set[str]) -> list[str]:
    """Which of the top-level packages ``roots`` a fresh interpreter has loaded after running
    ``statements`` (e.g. ``import spectral_core``)."""
    wanted = repr(set(roots))
    code = (f"import json, sys; {statements}; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {wanted})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_spectral_core_does_not_import_prefect():
    assert _loaded("import spectral_core", {"prefect"}) == []


def test_ruff_is_clean():
    """The configured linter passes on the whole repository (it is part of CI)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ruff = Path(sys.executable).parent / "ruff"
    out = subprocess.run([str(ruff), "check", str(root)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_matplotlib_is_imported_only_to_draw_the_report():
    """The flow's modules (and the library) load without matplotlib: the report imports it
    when it draws, on the worker, so a flow import or a deployment's start does not pay for
    it."""
    assert _loaded("import spectral_core, spectral_pipeline.flows.spectral, "
                   "spectral_pipeline.flows.cli, spectral_pipeline.tasks.report",
                   {"matplotlib"}) == []


def test_the_command_line_checks_import_no_prefect():
    """`spectral-flow run` checks paths, columns and parameters before Prefect starts: the
    modules it needs for that must not import Prefect (nor start anything)."""
    assert _loaded("import spectral_pipeline.flows.params, spectral_pipeline.tasks.preflight",
                   {"prefect", "prefect_dask", "distributed"}) == []


def test_pre_flight_checks_load_no_scikit_learn(tmp_path):
    """The command line's checks (``spectral_pipeline.tasks.preflight.build_job``) run before a
    Prefect server starts: they must not wait for scikit-learn's import (~2 s)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": np.arange(50.0), "b": np.arange(50.0)}), tmp_path / "x.parquet")
    checks = ("from spectral_pipeline.flows.params import SpectralParams; "
              "from spectral_pipeline.tasks.preflight import build_job; "
              f"p = SpectralParams(input={str(tmp_path / 'x.parquet')!r}, "
              f"output_dir={str(tmp_path / 'out')!r}, n_clusters=2, n_components=10); "
              "build_job(p.request(), hash_files=False)")
    assert _loaded(checks, {"sklearn", "prefect", "matplotlib"}) == []


def test_no_module_imports_the_pipeline_by_its_folder_names():
    """The pipeline's folders are installed as ``spectral_pipeline.flows`` / ``.tasks`` /
    ``.deployments``: an ``import flows`` would work only with the checkout on ``sys.path``
    (and would load a second copy of the module beside the installed one)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    folders = {"flows", "tasks", "deployments"}
    found = []
    for path in root.glob("*/**/*.py"):
        if path.relative_to(root).parts[0] in {".venv", "build", ".git"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            found += [f"{path.relative_to(root)}:{node.lineno}: {name}" for name in names
                      if name.split(".")[0] in folders]
    assert not found, found
