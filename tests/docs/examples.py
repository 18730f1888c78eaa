"""The examples of the documentation (docs/*.md and README.md), as the tests run them.

Python examples are ```pycon blocks: :func:`run_page_doctest` runs those of one page, in
order, as one doctest. Shell examples are ```bash blocks, each directly preceded by a line
``<!-- example: NAME -->``: :func:`block` returns one by name, and the test that owns it runs
exactly that text with :func:`run_bash` (or :func:`start_bash` for a long-running command),
with ``bash -euo pipefail`` and this test environment's bin folder first on PATH.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

_OPEN = re.compile(r"^(`{3,})(\S*)\s*$")
_NAME = re.compile(r"^<!-- example: ([a-z0-9-]+) -->$")


@dataclass(frozen=True)
class Block:
    page: Path
    lang: str
    name: str | None  # from the comment line right above the fence
    line: int  # of the first line inside the fence (1-based)
    text: str


def pages() -> list[Path]:
    """Every page that holds examples: the guide's Markdown pages and the README."""
    return [*sorted(DOCS.glob("*.md")), README]


def fenced_blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.groups()
        above = _NAME.match(lines[i - 1].strip()) if i else None
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
        assert end is not None, f"{page.name}:{i + 1}: a fence that is never closed"
        blocks.append(Block(page, lang, above.group(1) if above else None, i + 2,
                            "\n".join(lines[i + 1:end]) + "\n"))
        i = end + 1
    return blocks


def block(name: str) -> str:
    """The text of the shell example called ``name`` (exactly one in all pages)."""
    found = [b for page in pages() for b in fenced_blocks(page) if b.name == name]
    assert len(found) == 1, f"{len(found)} examples are named {name!r}"
    assert found[0].lang == "bash", found[0]
    return found[0].text


def with_ports(text: str, ports: dict[int, int]) -> str:
    """``text`` with each port number of the example replaced by the test's own (the servers
    of the tests listen on free ports, not on the documented ones)."""
    for old, new in ports.items():
        assert re.search(rf"\b{old}\b", text), (old, text)
        text = re.sub(rf"\b{old}\b", str(new), text)
    return text


def doctest_text(page: Path) -> str:
    """The page's pycon blocks as one doctest, each line where it is on the page (so a
    failure names the page's line), everything else blank."""
    lines = [""] * len(page.read_text().splitlines())
    for b in fenced_blocks(page):
        if b.lang == "pycon":
            for k, text in enumerate(b.text.splitlines()):
                lines[b.line - 1 + k] = text
    return "\n".join(lines) + "\n"


def run_page_doctest(page: Path, cwd: Path) -> int:
    """Run the page's pycon blocks in ``cwd`` (one namespace); fail with doctest's report.
    Returns the number of examples run."""
    test = doctest.DocTestParser().get_doctest(doctest_text(page), {"__name__": "__main__"},
                                               page.name, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS |
                                   doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    with contextlib.chdir(cwd):
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
    return runner.tries


def shell_env(env: dict[str, str], bin_dir: Path = BIN) -> dict[str, str]:
    """``env`` with a virtual environment's bin folder first on PATH (the activated venv the
    pages assume: this test environment's, unless another is given)."""
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}"}


def venv_link(folder: Path) -> Path:
    """``folder/.venv`` pointing at this test environment, so that the README's
    ``.venv/bin/...`` commands run it. Returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / ".venv"
    if not link.exists():
        link.symlink_to(sys.prefix, target_is_directory=True)
    return folder


def run_bash(text: str, *, cwd: Path, env: dict[str, str], timeout: float = 300,
             bin_dir: Path = BIN) -> subprocess.CompletedProcess:
    """Run an example as written, in its own process group (ended afterwards, with anything
    it left running)."""
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", text], cwd=cwd,
                            env=shell_env(env, bin_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def start_bash(text: str, *, cwd: Path, env: dict[str, str], log,
               bin_dir: Path = BIN) -> subprocess.Popen:
    """Start a long-running example (a server, a worker) in its own process group; stop it
    with ``os.killpg``."""
    return subprocess.Popen(["bash", "-euo", "pipefail", "-c", text], cwd=cwd,
                            env=shell_env(env, bin_dir), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def customers(folder: Path, *, rows: int = 3000, centres: int = 10, files: int = 3,
              seed: int = 0):
    """The data the pipeline examples name: Parquet files in ``folder`` with a
    ``customer_id`` column and 8 features of ``centres`` well-separated blobs. Returns the
    true groups, in row order."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_blobs

    X, y = make_blobs(rows, n_features=8, centers=centres, cluster_std=0.5, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(8)])
    frame.insert(0, "customer_id", np.arange(rows) + 10_000)
    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(rows), files)):
        frame.iloc[part].to_parquet(folder / f"part-{i}.parquet", index=False)
    return y
