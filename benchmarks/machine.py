"""The machine a benchmark ran on: CPU, vector extensions, cores, BLAS, library versions.

Every benchmark prints :func:`describe` above its table: a number means little without the
machine it was measured on, and design choices that depend on the machine must say which.
"""

from __future__ import annotations

import os
import platform

_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx2", "fma", "sse4_2", "neon", "asimd")


def _cpu() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    present = set(value.split())
                    flags = [f for f in _FLAGS if f in present]
    except OSError:
        pass
    return model, flags


def describe() -> str:
    """One paragraph: CPU model and flags, cores, BLAS, numpy, Python."""
    import numpy as np
    from threadpoolctl import threadpool_info

    model, flags = _cpu()
    blas = [f"{i['internal_api']} {i['version']} ({i.get('threading_layer', '?')}, "
            f"{i['num_threads']} threads, {i.get('architecture', '?')})"
            for i in threadpool_info() if i["user_api"] == "blas"]
    try:
        from spectral_core._fastkernels import ISA

        kernel = f"compiled, {ISA} build"
    except ImportError:
        kernel = "numpy fallback (the C extension is not built)"
    return (f"machine: {model}, {os.cpu_count()} cores, flags {' '.join(flags) or 'none'}\n"
            f"BLAS: {'; '.join(blas) or 'none found'}\n"
            f"numpy {np.__version__}, Python {platform.python_version()}; "
            f"spectral_core's rbf kernel: {kernel}")
