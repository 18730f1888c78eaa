"""Every example of the documentation runs in a test, and this file says which.

- ```pycon blocks: each page's blocks run in order as one doctest. Pages that need nothing
  but an empty working directory run here (:data:`PLAIN_PAGES`); the others are prepared by
  the test named in :data:`PREPARED`.
- ```bash blocks: each is named (``<!-- example: NAME -->`` right above it) and run, as
  written, by the test whose source names it; the few exemptions are :data:`EXEMPT`.
- Anything else that is fenced is an output sample or a layout (```text) or a Sphinx
  directive (```{toctree}), never an example.
"""

import re
import shlex
import subprocess
import sys

import pytest

from .examples import DOCS, README, ROOT, fenced_blocks, pages, run_page_doctest

#: Pages whose pycon blocks need data or a run first, and the test that prepares and runs
#: them.
PREPARED = {
    "README.md": "tests/docs/test_pipeline_examples.py::test_readme_run_and_its_examples",
    "pipeline.md": "tests/docs/test_pipeline_examples.py::test_pipeline_page",
}

#: Shell examples that no test runs as written, and why.
EXEMPT = {
    "readme-tests": "it is .ci/run, the command CI runs: the test suite itself",
    "dev-tests": "the test suite itself (pytest from inside pytest)",
    "getting-started-install": "creating the environment and installing the project is "
                               "what CI's own setup (.ci/run) does before any test runs",
}
#: Benchmark commands (``python benchmarks/...``) run for minutes to hours: instead of being
#: run, every flag they use must be accepted by the script's parser
#: (test_benchmark_commands_use_flags_their_scripts_accept).
BENCHMARK = re.compile(r"\bpython benchmarks/(\w+)\.py\b")

PLAIN_PAGES = sorted(p.name for p in pages()
                     if any(b.lang == "pycon" for b in fenced_blocks(p))
                     and p.name not in PREPARED)


@pytest.mark.parametrize("page", PLAIN_PAGES)
def test_page_examples(page, tmp_path):
    assert run_page_doctest(DOCS / page, tmp_path) > 0


def _test_sources() -> str:
    """The source of every test module but this one (whose lists name exemptions, not
    uses)."""
    here = __file__
    return "\n".join(p.read_text() for p in sorted((ROOT / "tests").rglob("*.py"))
                     if str(p) != here)


def test_every_example_is_run_by_a_test():
    sources = _test_sources()
    names, problems = [], []
    for page in pages():
        for b in fenced_blocks(page):
            where = f"{page.relative_to(ROOT)}:{b.line}"
            if b.lang == "pycon":
                if page.name not in PREPARED and page.name not in PLAIN_PAGES:
                    problems.append(f"{where}: pycon block on a page no test runs")
            elif b.lang == "bash":
                if b.name is None:
                    problems.append(f"{where}: bash block without <!-- example: NAME -->")
                    continue
                names.append(b.name)
                used = re.search(rf"[\"']{re.escape(b.name)}[\"']", sources)
                if not used and b.name not in EXEMPT and not BENCHMARK.search(b.text):
                    problems.append(f"{where}: no test runs the example {b.name!r}")
            elif b.lang != "text" and not b.lang.startswith("{"):
                problems.append(f"{where}: a ```{b.lang} block: examples are pycon or bash, "
                                "samples text")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, duplicates
    assert set(EXEMPT) <= set(names), set(EXEMPT) - set(names)
    assert not problems, "\n".join(problems)
    for test in PREPARED.values():
        path, name = test.split("::")
        assert f"def {name}(" in (ROOT / path).read_text(), test


def _benchmark_commands() -> list[tuple[str, str, list[str]]]:
    """(example, script, flags) of every benchmark command in the pages."""
    found = []
    for page in pages():
        for b in fenced_blocks(page):
            if b.lang != "bash":
                continue
            for command in b.text.replace("\\\n", " ").splitlines():
                m = BENCHMARK.search(command)
                if m:
                    words = shlex.split(command[m.end():].split("#")[0])
                    found.append((b.name, m.group(1), [w.split("=")[0] for w in words
                                                       if w.startswith("--")]))
    return found


def test_benchmark_commands_use_flags_their_scripts_accept():
    commands = _benchmark_commands()
    scripts = {script for _, script, _ in commands}
    assert {"speed", "scale", "accuracy", "bad_input"} <= scripts, scripts
    helps = {}
    for script in sorted(scripts):
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"),
                              "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        helps[script] = out.stdout
    unknown = [(name, script, flag) for name, script, flags in commands for flag in flags
               if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps[script])]
    assert not unknown, unknown
    assert any(flags for _, _, flags in commands)


def test_the_readme_links_every_guide_page():
    text = README.read_text()
    for page in ("getting-started", "library", "pipeline", "operations",
                 "storage-and-clusters", "reliability", "choosing-n-clusters", "benchmarks",
                 "architecture", "development"):
        assert f"(docs/{page}.md)" in text, page
        assert (DOCS / f"{page}.md").exists(), page
