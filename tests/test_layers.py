"""The math layer never imports the orchestration layer."""

import json
import subprocess
import sys


def test_spectral_core_does_not_import_prefect():
    code = (
        "import json, sys, spectral_core; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []
