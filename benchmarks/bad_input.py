"""How long `spectral-flow run` takes to refuse a bad input, and how much it prints: two
versions side by side (and a good run, for the cost of starting the server later).

    python benchmarks/bad_input.py --before /tmp/wt-before/.venv/bin/python

Each side is an interpreter whose environment has one version of the project installed
(``pip install -e`` in its checkout); ``--after`` defaults to this one. Each case runs that
version's command module (``python -m spectral_pipeline.flows.cli run ...``, or ``flows.cli``
for a version from before the package was renamed) in a fresh process, with no
PREFECT_API_URL (the command starts its own server when it needs one) and a PREFECT_HOME per
side whose database was created by one untimed run first. Time is wall time to exit; lines
are everything printed (stdout and stderr).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe


def write_data(root: Path) -> dict[str, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    X = rng.random((400, 3))
    paths = {name: root / name for name in ("good", "ten", "nan")}
    for p in paths.values():
        p.mkdir(parents=True)
    pq.write_table(pa.table({"id": np.arange(400), **{f"f{j}": X[:, j] for j in range(3)}}),
                   paths["good"] / "a.parquet", row_group_size=100)
    pq.write_table(pa.table({"id": np.arange(10), **{f"f{j}": X[:10, j] for j in range(3)}}),
                   paths["ten"] / "a.parquet")
    Y = X.copy()
    Y[57, 1] = np.nan
    pq.write_table(pa.table({"id": np.arange(400), **{f"f{j}": Y[:, j] for j in range(3)}}),
                   paths["nan"] / "a.parquet", row_group_size=100)
    return paths


def cases(data: dict[str, Path], out: Path) -> list[tuple[str, list[str]]]:
    small = ["--n-components", "20", "--n-clusters", "2"]
    return [
        ("input does not exist", [str(out / "nope"), "--output", str(out / "o1")]),
        ("missing feature column", [str(data["good"]), "--feature-columns", "f0,f9",
                                    "--output", str(out / "o2")]),
        ("--n-clusters 20 on 10 rows", [str(data["ten"]), "--n-clusters", "20",
                                        "--output", str(out / "o3")]),
        ("--gamma -1", [str(data["good"]), "--gamma", "-1", "--output", str(out / "o4")]),
        ("--kernel-params '{bad'", [str(data["good"]), "--kernel-params", "{bad",
                                    "--output", str(out / "o5")]),
        ("NaN in the data", [str(data["nan"]), *small, "--output", str(out / "o6")]),
        ("(no error: a good 400-row run)", [str(data["good"]), *small, "--gamma", "0.1",
                                            "--output", str(out / "o7")]),
    ]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def command_module(python: str) -> str:
    """The command's module in ``python``'s environment (its name changed once)."""
    for module in ("spectral_pipeline.flows.cli", "flows.cli"):
        found = subprocess.run([python, "-c", f"import {module} as m; print(m.__file__)"],
                               capture_output=True, text=True, cwd=tempfile.gettempdir())
        if found.returncode == 0:
            print(f"{python}: {module} from {found.stdout.strip()}", file=sys.stderr)
            return module
    raise SystemExit(f"{python}: the project is not installed in this environment")


def run(command: list[str], home: Path, args: list[str]) -> tuple[float, int, int, str]:
    start = time.perf_counter()
    proc = subprocess.run([*command, "run", *args], env=_env(home), cwd=home.parent,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=600)
    seconds = time.perf_counter() - start
    lines = len(proc.stdout.splitlines()) + len(proc.stderr.splitlines())
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    return seconds, lines, proc.returncode, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True,
                        help="an interpreter with the old version installed")
    parser.add_argument("--after", default=sys.executable,
                        help="an interpreter with the new version installed (default: this)")
    parser.add_argument("--show", action="store_true", help="also print each last line")
    parser.add_argument("--only", default="", help="only the cases whose name contains this")
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory(prefix="bad-input-") as tmp:
        root = Path(tmp)
        data = write_data(root / "data")
        homes = {side: root / f"prefect-home-{side}" for side in ("before", "after")}
        commands = {side: [python, "-m", command_module(python)]
                    for side, python in (("before", args.before), ("after", args.after))}
        for side in ("before", "after"):  # create each PREFECT_HOME's database, untimed
            run(commands[side], homes[side], [str(data["nan"]), "--output",
                                              str(root / f"warm-{side}")])
        rows = []
        per_side = {side: cases(data, root / "out" / side) for side in ("before", "after")}
        for i, (name, _) in enumerate(per_side["after"]):
            if args.only not in name:
                continue
            row = [name]
            for side in ("before", "after"):
                seconds, lines, code, last = run(commands[side], homes[side],
                                                 per_side[side][i][1])
                row += [f"{seconds:.1f}", str(lines), str(code)]
                if args.show:
                    print(f"  {side:6} {name}: {last}", flush=True)
            rows.append(row)
            print("  " + " | ".join(row), file=sys.stderr, flush=True)
    print()
    print("| bad input | before: s | lines | exit | after: s | lines | exit |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
