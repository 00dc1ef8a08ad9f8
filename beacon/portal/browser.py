"""Headless Chromium driven over the DevTools protocol (CDP), and what the browser itself saw.

One small client, no browser download: it starts the system's ``chromium`` with
``--remote-debugging-port=0``, reads the port from ``DevToolsActivePort`` in its profile folder, and
talks CDP over one websocket (``websockets``). A :class:`Page` records, from the browser's own
events, every console message and exception, every browser log entry (CORS refusals are reported
there), and every network exchange — CORS preflights included, with their status and headers —
so a check can say what a person would have read in DevTools. See docs/decisions/1301-*.md.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LAUNCH_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # runs as root in CI containers, where the sandbox cannot start
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--mute-audio",
    "--password-store=basic",
    "--window-size=1280,900",
)


class BrowserError(RuntimeError):
    """The browser did not start, a CDP command failed, or a page did not reach a state in time."""


class BrowserUnavailable(BrowserError):
    """No Chromium on this host (the message says where it was looked for)."""


def find_chromium(explicit: str | None = None) -> str:
    """The Chromium executable: ``explicit`` if given, else the first of CHROMIUM_NAMES on PATH."""
    if explicit:
        path = shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
        if path is None:
            raise BrowserUnavailable(f"no browser at {explicit!r}")
        return path
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    raise BrowserUnavailable(
        f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)}; Debian: apt-get install chromium)"
    )


@dataclass
class Exchange:
    """One network request as the browser saw it (a CORS preflight is its own exchange)."""

    request_id: str
    url: str
    method: str
    resource_type: str
    request_headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    failure: str | None = None
    cors_error: str | None = None
    finished: bool = False
    """The browser has the whole response (or gave up on it)."""

    @property
    def preflight(self) -> bool:
        return self.resource_type == "Preflight" or self.method == "OPTIONS"

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "method": self.method,
            "type": self.resource_type,
            "preflight": self.preflight,
            "status": self.status,
            "request_headers": self.request_headers,
            "response_headers": self.response_headers,
            "failure": self.failure,
            "cors_error": self.cors_error,
        }


def _lower(headers: dict[str, Any] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


class Browser:
    """A headless Chromium process and its CDP connection. Use as a context manager."""

    def __init__(self, executable: str | None = None, *, timeout_s: float = 30.0) -> None:
        self.executable = find_chromium(executable)
        self.timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="beacon-chromium-")
        self._process: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._stack = contextlib.ExitStack()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._listeners: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._threads: list[threading.Thread] = []
        self.version: str = ""

    # --- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> Browser:
        from websockets.sync.client import connect

        profile = Path(self._profile.name)
        self._process = subprocess.Popen(
            [self.executable, *LAUNCH_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self._process.poll() is not None:
                raise BrowserError(f"{self.executable} exited with status {self._process.returncode}")
            if time.monotonic() > deadline:
                self.close()
                raise BrowserError(f"{self.executable} opened no DevTools port in {self.timeout_s:.0f}s")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._ws = self._stack.enter_context(
            connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=self.timeout_s)
        )
        for target in (self._read, self._dispatch):
            thread = threading.Thread(target=target, name=f"cdp-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.version = str(self.send("Browser.getVersion").get("product", ""))
        return self

    def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self.send("Browser.close", timeout_s=5)
            with contextlib.suppress(Exception):
                self._stack.close()
            self._ws = None
        self._events.put(None)
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        with contextlib.suppress(OSError):
            self._profile.cleanup()

    # --- the protocol -----------------------------------------------------------------------------
    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Send a CDP command and wait for its result (BrowserError with CDP's message on an error)."""
        if self._ws is None:
            raise BrowserError("the browser is not running")
        message_id = next(self._ids)
        done, slot = threading.Event(), list[dict[str, Any]]()
        with self._lock:
            self._pending[message_id] = (done, slot)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        if not done.wait(timeout_s or self.timeout_s):
            raise BrowserError(f"CDP {method}: no answer in {timeout_s or self.timeout_s:.0f}s")
        reply = slot[0]
        if "error" in reply:
            raise BrowserError(
                f"CDP {method}: {reply['error'].get('message')} {reply['error'].get('data', '')}"
            )
        result: dict[str, Any] = reply.get("result", {})
        return result

    def _read(self) -> None:
        try:
            for raw in self._ws:
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        waiting = self._pending.pop(message["id"], None)
                    if waiting is not None:
                        waiting[1].append(message)
                        waiting[0].set()
                else:
                    self._events.put(message)
        except Exception:  # the connection closed: waiting commands time out with their own message
            return

    def _dispatch(self) -> None:
        # Events are handled off the reading thread, so a handler may itself send commands.
        while (event := self._events.get()) is not None:
            listener = self._listeners.get(event.get("sessionId", ""))
            if listener is not None:
                with contextlib.suppress(Exception):
                    listener(event)

    def new_page(self) -> Page:
        """A fresh tab with console, log, network and page events recorded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, target)
        self._listeners[session] = page._on_event
        for domain in ("Runtime", "Log", "Network", "Page"):
            page.send(f"{domain}.enable")
        page.send(  # a fixed layout viewport: screenshots of the same page compare
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        page.send("Emulation.setScrollbarsHidden", {"hidden": True})  # the layout stays put while capturing
        return page


class Page:
    """One tab: commands, and the record of what happened in it."""

    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.console: list[dict[str, Any]] = []
        """Console API calls, uncaught exceptions and browser log entries: {source, level, text, url}."""
        self.exchanges: dict[str, Exchange] = {}
        self._loaded = threading.Event()
        self._interceptors: list[tuple[str, Callable[[str, bytes], bytes]]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, timeout_s: float | None = None
    ) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session, timeout_s=timeout_s)

    def close(self) -> None:
        """Close the tab (its record stays readable)."""
        self.browser._listeners.pop(self.session, None)
        with contextlib.suppress(BrowserError):
            self.browser.send("Target.closeTarget", {"targetId": self.target})

    # --- what the page does -----------------------------------------------------------------------
    def navigate(self, url: str, timeout_s: float = 30.0) -> None:
        self._loaded.clear()
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"navigating to {url}: {answer['errorText']}")
        if not self._loaded.wait(timeout_s):
            raise BrowserError(f"{url} did not finish loading in {timeout_s:.0f}s")

    def evaluate(self, expression: str, timeout_s: float = 30.0) -> Any:
        """The value of a JavaScript expression (promises awaited); BrowserError if it throws."""
        answer = self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "timeout": int(timeout_s * 1000),
            },
            timeout_s=timeout_s + 5,
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript threw: {text}")
        return answer.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float = 30.0, interval_s: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy; BrowserError naming it after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out after {timeout_s:.0f}s waiting for {expression}")
            time.sleep(interval_s)

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def press(self, key: str, code: str | None = None, text: str | None = None) -> None:
        """A real key press (keyDown, char, keyUp) on the focused element."""
        base = {
            "key": key,
            "code": code or key,
            "windowsVirtualKeyCode": {"Enter": 13, "Tab": 9, " ": 32}.get(key, 0),
        }
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", **base, **({"text": text} if text else {})})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def screenshot(self, path: Path, selector: str | None = None) -> Path:
        """A PNG of the element ``selector`` (with a margin), or of the whole document."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if selector is not None:
            box = self.evaluate(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()"
            )
            margin = 8
            params["clip"] = {
                "x": max(0, box["x"] - margin),
                "y": max(0, box["y"] - margin),
                "width": box["width"] + 2 * margin,
                "height": box["height"] + 2 * margin,
                "scale": 1,
            }
        else:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.send("Page.captureScreenshot", params, timeout_s=60)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def intercept_responses(self, url_pattern: str, transform: Callable[[str, bytes], bytes]) -> None:
        """Rewrite the bodies of responses whose URL matches ``url_pattern`` (CDP Fetch wildcards)."""
        self._interceptors.append((url_pattern, transform))
        patterns = [{"urlPattern": p, "requestStage": "Request"} for p, _ in self._interceptors]
        self.send("Fetch.enable", {"patterns": patterns})

    # --- what the browser reported ----------------------------------------------------------------
    def errors(self) -> list[dict[str, Any]]:
        """Console errors, uncaught exceptions and error-level browser log entries."""
        return [entry for entry in self.console if entry["level"] == "error"]

    def requests(self) -> list[Exchange]:
        return list(self.exchanges.values())

    def settle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every request seen so far has finished (events trail the page's own view a little)."""
        deadline = time.monotonic() + timeout_s
        while any(not e.finished for e in list(self.exchanges.values())):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    @contextlib.contextmanager
    def recording(self) -> Iterator[tuple[list[dict[str, Any]], list[Exchange]]]:
        """Start from an empty record; yields the (console, exchanges) recorded inside the block."""
        self.console.clear()
        self.exchanges.clear()
        console: list[dict[str, Any]] = []
        exchanges: list[Exchange] = []
        yield console, exchanges
        console.extend(self.console)
        exchanges.extend(self.exchanges.values())

    def _exchange(self, request_id: str) -> Exchange:
        if request_id not in self.exchanges:
            self.exchanges[request_id] = Exchange(request_id, "", "", "")
        return self.exchanges[request_id]

    def _on_event(self, event: dict[str, Any]) -> None:
        method, params = event.get("method", ""), event.get("params", {})
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            level = {"error": "error", "assert": "error", "warning": "warning"}.get(
                params.get("type", ""), "info"
            )
            self.console.append({"source": "console", "level": level, "text": text, "url": None})
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.console.append(
                {"source": "exception", "level": "error", "text": text, "url": details.get("url")}
            )
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append(
                {
                    "source": entry.get("source", "other"),
                    "level": entry.get("level", "info"),
                    "text": entry.get("text", ""),
                    "url": entry.get("url"),
                }
            )
        elif method == "Network.requestWillBeSent":
            request = params.get("request", {})
            exchange = self._exchange(params["requestId"])
            exchange.url = request.get("url", "")
            exchange.method = request.get("method", "")
            exchange.resource_type = params.get("type", "")
            exchange.request_headers.update(_lower(request.get("headers")))
        elif method == "Network.requestWillBeSentExtraInfo":
            self._exchange(params["requestId"]).request_headers.update(_lower(params.get("headers")))
        elif method == "Network.responseReceived":
            response = params.get("response", {})
            exchange = self._exchange(params["requestId"])
            exchange.status = response.get("status")
            exchange.resource_type = params.get("type", exchange.resource_type)
            exchange.response_headers.update(_lower(response.get("headers")))
        elif method == "Network.responseReceivedExtraInfo":
            exchange = self._exchange(params["requestId"])
            exchange.status = exchange.status or params.get("statusCode")
            exchange.response_headers.update(_lower(params.get("headers")))
        elif method == "Network.loadingFinished":
            self._exchange(params["requestId"]).finished = True
        elif method == "Network.loadingFailed":
            exchange = self._exchange(params["requestId"])
            exchange.finished = True
            exchange.failure = params.get("errorText") or params.get("blockedReason") or "failed"
            cors = params.get("corsErrorStatus")
            if cors:
                exchange.cors_error = f"{cors.get('corsError')} {cors.get('failedParameter', '')}".strip()
        elif method == "Fetch.requestPaused":
            self._rewrite(params)

    def _rewrite(self, params: dict[str, Any]) -> None:
        from fnmatch import fnmatchcase

        url = params["request"]["url"]
        transform = next((t for p, t in self._interceptors if fnmatchcase(url, p)), None)
        if transform is None:
            self.send("Fetch.continueRequest", {"requestId": params["requestId"]})
            return
        # Paused before it is sent: send it from here, and hand the browser the rewritten answer (the
        # browser still applies CORS to it). Pausing at the response stage fails cross-origin requests.
        status, headers, body = _fetch_upstream(params["request"])
        self.send(
            "Fetch.fulfillRequest",
            {
                "requestId": params["requestId"],
                "responseCode": status,
                "responseHeaders": [
                    h for h in headers if h["name"].lower() not in ("content-length", "content-encoding")
                ],
                "body": base64.b64encode(transform(url, body)).decode("ascii"),
            },
        )


def _fetch_upstream(request: dict[str, Any]) -> tuple[int, list[dict[str, str]], bytes]:
    """Send a paused request from here (loopback only: what a test intercepts is its own runner)."""
    import urllib.error
    import urllib.request

    if urllib.parse.urlsplit(request["url"]).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise BrowserError(f"refusing to fetch {request['url']} on the page's behalf")
    outgoing = urllib.request.Request(  # noqa: S310 (http to loopback only, checked above)
        request["url"],
        data=request.get("postData", "").encode() or None,
        method=request.get("method", "GET"),
        headers=dict(request.get("headers") or {}),
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=30) as response:  # noqa: S310
            return (
                response.status,
                [{"name": k, "value": v} for k, v in response.headers.items()],
                response.read(),
            )
    except urllib.error.HTTPError as error:
        return error.code, [{"name": k, "value": v} for k, v in error.headers.items()], error.read()
