"""System packages some tests need (a real browser, a real PostgreSQL), installed once."""

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable

#: Held while apt-get runs: the two test workers may both find a package missing.
_LOCK = "/tmp/spectral-tests-apt.lock"


def apt_install(package: str, find: Callable[[], str | None]) -> str | None:
    """``find()``, after installing Debian's ``package`` if it found nothing and this process
    may (root, apt-get present). CI machines start without these; each takes a minute or less.
    """
    found = find()
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker may be installing it right now
        found = find()
        if not found:
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True,
                           capture_output=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            found = find()
    return found
