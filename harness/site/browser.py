"""Render pages in headless Chromium and report what a reader would see: console errors, uncaught
exceptions, failed loads, the page text and a screenshot.

Speaks the Chrome DevTools Protocol over `--remote-debugging-pipe` (fd 3 in, fd 4 out, messages ended by
NUL), as Playwright and Puppeteer do, so it needs no extra package, no port and no driver matched to the
browser version. Chromium is started offline: no first-run, sync, component updates or QUIC."""
from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "apt-get install -y chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-pipe")


def find_chromium() -> str | None:
    exe = os.environ.get("HARNESS_CHROMIUM")
    if exe:
        return exe if shutil.which(exe) else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclass
class Rendered:
    url: str
    title: str
    text: str
    errors: list[str] = field(default_factory=list)
    scripts: int = 0
    screenshot: bytes | None = None
    seconds: float = 0.0


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless browser with one tab; `render(url)` navigates and collects. Use as a context manager."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900, timeout: float = 30.0):
        self.exe = executable or find_chromium()
        if not self.exe:
            raise BrowserError(f"Chromium not found; install it with: {INSTALL_HINT}")
        self.width, self.height, self.timeout = width, height, timeout
        self._id = 0
        self._inbox: queue.Queue = queue.Queue()
        self._events: list[dict] = []

    def __enter__(self) -> "Chromium":
        self._profile = tempfile.TemporaryDirectory(prefix="harness-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds():  # the pipe ends become the child's fds 3 and 4 (moved out of the way first)
            r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self._log = tempfile.TemporaryFile()
        # The harness preloads OpenBLAS for MLX (reference/runtime.py); inside Chromium's GPU process that
        # preload makes it abort ("GPU process isn't usable"), so the browser starts without it.
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        self.proc = subprocess.Popen([self.exe, *FLAGS, f"--user-data-dir={self._profile.name}",
                                      f"--window-size={self.width},{self.height}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env,
                                     preexec_fn=fds, close_fds=False, start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        threading.Thread(target=self._reader, daemon=True).start()
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for m in ("Page.enable", "Runtime.enable", "Log.enable"):
                self.call(m, session=True)
            self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                             "deviceScaleFactor": 1, "mobile": False}, session=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self._send("Browser.close", {})
                    self.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        finally:
            # Chromium's helper processes (renderer, zygote, crashpad) can outlive the browser process
            # for a moment; they are in the session started above, so end exactly those.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for fd in (self._to_child, self._from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()
            for _ in range(20):  # a helper killed just now may still be flushing into the profile
                try:
                    self._profile.cleanup()
                    break
                except OSError:
                    time.sleep(0.05)

    def stderr_tail(self, n: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-n:]

    # -- protocol
    def _reader(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self._inbox.put(None)
                return
            buf += chunk
            *msgs, buf = buf.split(b"\0")
            for m in msgs:
                self._inbox.put(json.loads(m))

    def _send(self, method: str, params: dict, session: bool = False) -> int:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        return self._id

    def _next(self, deadline: float) -> dict:
        try:
            m = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise BrowserError(f"Chromium did not answer within {self.timeout:.0f} s") from None
        if m is None:
            raise BrowserError(f"Chromium exited (code {self.proc.poll()}): {self.stderr_tail()}")
        return m

    def _event(self, m: dict) -> None:
        self._events.append(m)
        if m["method"] == "Page.javascriptDialogOpening":  # a dialog blocks the page until answered
            self._send("Page.handleJavaScriptDialog", {"accept": False}, session=True)

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        i = self._send(method, params or {}, session)
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._next(deadline)
            if m.get("id") == i:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error'].get('message')}")
                return m.get("result", {})
            if "method" in m:
                self._event(m)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for k, m in enumerate(self._events):
            if m["method"] == method:
                return self._events.pop(k)
        while True:
            m = self._next(deadline)
            if m.get("method") == method:
                return m
            if "method" in m:
                self._event(m)

    def eval(self, expression: str):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=True)
        if "exceptionDetails" in r:
            raise BrowserError(f"evaluating {expression!r}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    # -- pages
    def render(self, url: str, screenshot: bool = True, max_height: int = 8000) -> Rendered:
        """Load `url`, wait for its load event and a settled frame, and collect what went wrong."""
        t0 = time.perf_counter()
        self._events.clear()
        nav = self.call("Page.navigate", {"url": url}, session=True)
        errors = [f"navigation failed: {nav['errorText']}"] if nav.get("errorText") else []
        if not errors:
            self.wait_event("Page.loadEventFired")
        self.eval("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
        info = self.eval("({title: document.title, text: document.body ? document.body.innerText : '', "
                         "scripts: document.scripts.length})") or {}
        for m in self._events:
            p = m.get("params", {})
            if m["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                errors.append(f"exception: {(d.get('exception') or {}).get('description') or d.get('text')}")
            elif m["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                           for a in p.get("args", [])))
            elif m["method"] == "Page.javascriptDialogOpening":
                errors.append(f"dialog ({p.get('type')}): {p.get('message')}")
            elif m["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                errors.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
        shot = None
        if screenshot:
            size = self.call("Page.getLayoutMetrics", session=True).get("cssContentSize") or {}
            h = int(min(max(size.get("height", self.height), 1), max_height))
            w = int(max(size.get("width", self.width), self.width))
            data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                        "clip": {"x": 0, "y": 0, "width": w, "height": h,
                                                                 "scale": 1}}, session=True)["data"]
            shot = base64.b64decode(data)
        return Rendered(url, info.get("title", ""), info.get("text", ""), errors, info.get("scripts", 0), shot,
                        time.perf_counter() - t0)


def render_site(site: str | Path, pages: list[str], shots: str | Path | None = None) -> dict[str, Rendered]:
    """Render each page (paths relative to `site`); with `shots`, save <page>.png there."""
    site = Path(site).resolve()
    out = {}
    with Chromium() as b:
        for rel in pages:
            r = b.render((site / rel).as_uri(), screenshot=shots is not None)
            if shots is not None and r.screenshot:
                p = Path(shots) / (rel.replace("/", "__").removesuffix(".html") + ".png")
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(r.screenshot)
            out[rel] = r
    return out
