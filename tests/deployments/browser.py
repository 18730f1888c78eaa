"""Headless Chromium for the UI tests: the rendered DOM of a page, and a click on a button.

No mock: the Prefect UI's own JavaScript runs against the real server. The DOM comes from
``--dump-dom``; clicks go through the Chrome DevTools Protocol (a websocket, with the
``websockets`` package Prefect already depends on).
"""

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from ..browser import chromium

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage"]


def dump_dom(url: str, budget_ms: int = 15000) -> str:
    """The page's DOM after its scripts ran for ``budget_ms`` of virtual time."""
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}",
                              f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                             capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and "<body" in out.stdout, out.stderr[-2000:]
    return out.stdout


class Page:
    """One Chromium tab driven over the DevTools Protocol (``with Page(url) as page``)."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self):
        from websockets.sync.client import connect

        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self._proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={self._profile.name}",
             "--remote-debugging-port=0", "--window-size=1400,3000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and self._proc.poll() is None, \
                "Chromium did not open its DevTools port"
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=30) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        self._ws = connect(target["webSocketDebuggerUrl"], max_size=None)
        self._id = 0
        #: The page's console calls, in order: (type, text), such as ("warning", "...").
        self.console: list[tuple[str, str]] = []
        self._call("Runtime.enable")  # before navigating: the first scripts' calls count
        self._call("Page.navigate", url=self.url)
        return self

    def __exit__(self, *exc):
        self._ws.close()
        # Chromium's helpers (renderer, GPU, zygote) share its session: stop them all, or
        # they still write to the profile while it is removed.
        os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        time.sleep(0.5)
        self._profile.cleanup()

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
            time.sleep(0.5)
        raise AssertionError(f"page {self.url} never satisfied {expression!r}")

    def screenshot(self, path) -> None:
        """The page as it is now, as a PNG file."""
        import base64

        data = self._call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def click_button(self, text: str) -> None:
        """Click the first <button> whose text is ``text``."""
        clicked = self.evaluate(
            "(() => { const b = [...document.querySelectorAll('button')]"
            f".find(b => b.textContent.trim() === {json.dumps(text)});"
            " if (b) { b.click(); return true; } return false; })()")
        assert clicked, f"no button {text!r} on {self.url}"
