"""Headless Chromium for the report's rendering tests, and what a screenshot shows."""

import os
import shutil
import subprocess

import numpy as np
import pytest

from .system import apt_install


def chromium() -> str:
    """The browser's path; installed from Debian's package when missing and running as root."""
    found = apt_install("chromium", lambda: shutil.which("chromium")
                        or shutil.which("chromium-browser"))
    if not found:
        pytest.fail("Chromium is not installed (Debian: apt-get install chromium); this test "
                    "renders the report in a real browser.")
    return found


def screenshot(url: str, path, profile, *, size: str = "1200,1600", wait_ms: int = 0) -> None:
    """A headless Chromium screenshot of ``url``; ``wait_ms`` of virtual time lets a
    single-page app fetch its data and draw before the shot."""
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--screenshot={path}", f"--window-size={size}"]
    if wait_ms:
        args.append(f"--virtual-time-budget={wait_ms}")
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and os.path.exists(path), proc.stderr[-3000:]


def rgb_pixels(png_path) -> np.ndarray:
    """(pixels, 3) uint8 colours of a PNG."""
    from matplotlib import image

    rgba = image.imread(png_path)
    return (rgba[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)


def near(pixels: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> int:
    """How many pixels are within ``tol`` of ``colour`` in every channel."""
    return int((np.abs(pixels.astype(int) - np.asarray(colour)) <= tol).all(axis=1).sum())
