"""One headless Chromium per test process, driven over the DevTools Protocol: the report's and
the documentation's screenshots, the Prefect UI's pages, and what a screenshot shows.

No mock: pages run their own JavaScript in a real browser. Chromium starts on first use
(:func:`session`) and stops when the test process ends (tests/conftest.py); each page is a tab
of its own, opened and closed in that one browser. The DevTools messages go over a websocket,
with the ``websockets`` package Prefect already depends on.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from .system import apt_install

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", "--hide-scrollbars"]

#: JavaScript: the page has loaded, with its images and fonts (a static page is drawn).
LOADED = ("document.readyState === 'complete' && [...document.images].every(i => i.complete)"
          " && document.fonts.status === 'loaded'")


def chromium() -> str:
    """The browser's path; installed from Debian's package when missing and running as root."""
    found = apt_install("chromium", lambda: shutil.which("chromium")
                        or shutil.which("chromium-browser"))
    if not found:
        pytest.fail("Chromium is not installed (Debian: apt-get install chromium); this test "
                    "renders pages in a real browser.")
    return found


class Browser:
    """A headless Chromium with its DevTools port open; :meth:`tab` opens a page in it."""

    def __init__(self):
        self._profile = tempfile.TemporaryDirectory(prefix="spectral-chromium-",
                                                    ignore_cleanup_errors=True)
        self._proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={self._profile.name}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and self._proc.poll() is None, \
                "Chromium did not open its DevTools port"
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])

    def _http(self, path: str, method: str = "GET") -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    def tab(self, url: str, size: tuple[int, int] = (1400, 3000)) -> "Tab":
        """A new tab of ``size`` (width, height) CSS pixels showing ``url``; use it as a
        context manager (``with browser.tab(url) as page``), which closes it."""
        return Tab(self, url, size)

    def close(self) -> None:
        # Chromium's helpers (renderer, GPU, zygote) share its session: stop them all, or
        # they still write to the profile while it is removed.
        try:
            os.killpg(self._proc.pid, signal.SIGTERM)
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        except ProcessLookupError:
            pass
        self._profile.cleanup()


class Tab:
    """One tab of a :class:`Browser`."""

    def __init__(self, browser: Browser, url: str, size: tuple[int, int]):
        self.browser, self.url, self.size = browser, url, size

    def __enter__(self):
        from websockets.sync.client import connect

        target = json.loads(self.browser._http("/json/new?about:blank", method="PUT"))
        self._target = target["id"]
        self._ws = connect(target["webSocketDebuggerUrl"], max_size=None)
        self._id = 0
        #: The page's console calls, in order: (type, text), such as ("warning", "...").
        self.console: list[tuple[str, str]] = []
        self._call("Runtime.enable")  # before navigating: the first scripts' calls count
        width, height = self.size
        self._call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                   deviceScaleFactor=1, mobile=False)
        self._call("Page.navigate", url=self.url)
        return self

    def __exit__(self, *exc):
        self._ws.close()
        self.browser._http(f"/json/close/{self._target}")

    def _call(self, method: str, **params):
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("method") == "Runtime.consoleAPICalled":
                event = message["params"]
                self.console.append((event["type"], " ".join(
                    str(arg.get("value", arg.get("description", ""))) for arg in event["args"])))
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self._call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90.0):
        """Poll until ``expression`` is truthy in the page; its value. (While the page
        loads, ``document.body`` may be null: an exception counts as not yet.)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(f"(() => {{ try {{ return ({expression}); }} "
                                  "catch (e) { return null; } })()")
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"page {self.url} never satisfied {expression!r}")

    def wait_until_still(self, quiet_s: float = 1.0, timeout: float = 90.0) -> None:
        """Until the DOM has not changed for ``quiet_s`` seconds (a page that renders in
        steps after it is shown: a MutationObserver records the last change)."""
        self.evaluate("(() => { if (!window.__lastChange) { window.__lastChange ="
                      " performance.now(); new MutationObserver(() => window.__lastChange ="
                      " performance.now()).observe(document, {subtree: true, childList: true,"
                      " attributes: true, characterData: true}); } return true; })()")
        self.wait_for(f"performance.now() - window.__lastChange > {quiet_s * 1000}", timeout)

    def click_button(self, text: str) -> None:
        """Click the first <button> whose text is ``text``."""
        clicked = self.evaluate(
            "(() => { const b = [...document.querySelectorAll('button')]"
            f".find(b => b.textContent.trim() === {json.dumps(text)});"
            " if (b) { b.click(); return true; } return false; })()")
        assert clicked, f"no button {text!r} on {self.url}"

    def dom(self) -> str:
        """The page's DOM as HTML (what ``chromium --dump-dom`` prints)."""
        return self.evaluate("document.documentElement.outerHTML")

    def screenshot(self, path) -> None:
        """A PNG of what the tab shows, ``size`` pixels."""
        data = self._call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))


_SESSION: Browser | None = None


def session() -> Browser:
    """This process's Chromium, started on first use."""
    global _SESSION
    if _SESSION is None or _SESSION._proc.poll() is not None:
        _SESSION = Browser()
    return _SESSION


def close_session() -> None:
    global _SESSION
    if _SESSION is not None:
        _SESSION.close()
        _SESSION = None


def page(url: str, size: tuple[int, int] = (1400, 3000)) -> Tab:
    """A tab of this process's Chromium showing ``url`` (``with page(url) as tab``)."""
    return session().tab(url, size)


def dump_dom(url: str, ready: str = LOADED, still_s: float = 0.0) -> str:
    """The DOM of ``url`` once ``ready`` (JavaScript) holds in it, and then (``still_s``)
    once the DOM has stopped changing."""
    with page(url) as tab:
        tab.wait_for(ready)
        if still_s:
            tab.wait_until_still(still_s)
        return tab.dom()


def screenshot(url: str, path, _profile=None, *, size: str = "1200,1600",
               ready: str = LOADED) -> None:
    """A screenshot of ``url`` in a ``size`` ("width,height") tab, once ``ready`` holds.

    (``_profile`` is not used: tests/flows/test_report.py still passes the profile folder
    that a Chromium of its own needed.)
    """
    width, height = (int(v) for v in size.split(","))
    with page(url, (width, height)) as tab:
        tab.wait_for(ready)
        tab.screenshot(path)
    assert os.path.getsize(path) > 0


def rgb_pixels(png_path) -> np.ndarray:
    """(pixels, 3) uint8 colours of a PNG."""
    from matplotlib import image

    rgba = image.imread(png_path)
    return (rgba[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)


def near(pixels: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> int:
    """How many pixels are within ``tol`` of ``colour`` in every channel."""
    return int((np.abs(pixels.astype(int) - np.asarray(colour)) <= tol).all(axis=1).sum())
