"""Open real reports in headless Chromium: the page renders, every image decodes, and the
browser logs no console error or JavaScript exception; runs/index.html links to the report.

The browser is driven over the DevTools protocol with a minimal standard-library websocket
client, so the test needs no Python package beyond pytest. It needs the `chromium` binary
(Debian: `apt-get install -y chromium`); without it the tests skip, except under CI=true,
where a missing browser is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]
START_TIMEOUT = 20.0   # seconds for Chromium to open its DevTools port
PAGE_TIMEOUT = 10.0    # seconds for one page to load and be checked
SETTLE = 0.3           # seconds to keep listening after the load event for late errors


# --------------------------------------------------------------------------------------
# A minimal websocket client (RFC 6455): text frames out (masked), frames in, ping/pong.
# --------------------------------------------------------------------------------------

class WebSocket:
    def __init__(self, url: str, timeout: float):
        assert url.startswith("ws://"), url
        hostport, _, path = url[len("ws://"):].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode("ascii"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"websocket handshake with {url} got no answer")
            head += chunk
        head, _, self._buf = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"websocket handshake with {url} failed: {head.decode(errors='replace')}")

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("websocket closed by the browser")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode("utf-8"))

    def recv(self, timeout: float) -> str:
        """The next whole text message; socket.timeout when none comes within `timeout`."""
        self.sock.settimeout(max(timeout, 0.001))
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x1, 0x2, 0x0):
                message += payload
                if b0 & 0x80:
                    return message.decode("utf-8")

    def close(self) -> None:
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


# --------------------------------------------------------------------------------------
# Chromium over the DevTools protocol
# --------------------------------------------------------------------------------------

@dataclass
class PageCheck:
    """What the browser saw on one page."""
    url: str
    title: str = ""
    text: str = ""
    images: list[dict] = field(default_factory=list)
    links: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)   # console errors, exceptions, failed loads
    layout: dict = field(default_factory=dict)        # where the results box and figures sit

    @property
    def broken_images(self) -> list[dict]:
        return [i for i in self.images if not (i["complete"] and i["width"] > 0)]

    def problems(self) -> list[str]:
        """Everything wrong with the page, one line each; empty when it is clean."""
        out = list(self.errors)
        out += [f"image not loaded: {i['src']} (complete={i['complete']}, naturalWidth={i['width']})"
                for i in self.broken_images]
        return out


_PAGE_STATE_JS = """(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return {
    title: document.title,
    text: document.body ? document.body.innerText : "",
    images: imgs.map(i => ({src: i.getAttribute("src").slice(0, 80), alt: i.alt,
                            complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})),
    links: Array.from(document.links).map(a => ({href: a.href, text: a.textContent.trim()})),
    layout: (() => {
      const box = document.querySelector("#result");
      const top = el => el ? el.getBoundingClientRect().top + window.scrollY : null;
      const figures = Array.from(document.querySelectorAll("figure"));
      const outside = figures.filter(f => !box || !box.contains(f));
      const details = document.querySelector("details");
      return {result: top(box), result_has_figure: !!(box && box.querySelector("figure img")),
              first_figure: top(figures[0] || null), first_outside_figure: top(outside[0] || null),
              first_h2: top(Array.from(document.querySelectorAll("h2")).find(h => !box || !box.contains(h)) || null),
              metrics_collapsed: details ? !details.open : null,
              height: document.documentElement.scrollHeight};
    })(),
  };
})()"""


class Browser:
    """One headless Chromium with a throwaway profile; each check() gets a fresh tab."""

    def __init__(self, binary: str):
        self._profile = tempfile.mkdtemp(prefix="mllabs-chromium-")
        with open(Path(self._profile) / "chromium-stderr.log", "wb") as log:
            self.proc = subprocess.Popen(
                [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            self.port = self._wait_for_port()
        except BaseException:
            self.close()
            raise

    def _stderr_tail(self) -> str:
        try:
            return (Path(self._profile) / "chromium-stderr.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _wait_for_port(self) -> int:
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}:\n{self._stderr_tail()}")
            try:
                lines = port_file.read_text().split()
            except OSError:
                lines = []
            if lines and lines[0].isdigit():
                return int(lines[0])
            time.sleep(0.05)
        raise RuntimeError(f"chromium opened no DevTools port within {START_TIMEOUT:.0f} s:\n"
                           f"{self._stderr_tail()}")

    def _http(self, method: str, path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=PAGE_TIMEOUT) as resp:
            body = resp.read().decode("utf-8")
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            return body

    def check(self, url: str, screenshot: Path | None = None) -> PageCheck:
        """Load `url` in a new tab, listening from before navigation, and report what happened;
        with `screenshot`, the top of the page as it renders is saved there as a PNG."""
        target = self._http("PUT", "/json/new?about:blank")
        ws = WebSocket(target["webSocketDebuggerUrl"], timeout=PAGE_TIMEOUT)
        try:
            return _Session(ws, PAGE_TIMEOUT).run(url, screenshot)
        finally:
            ws.close()
            try:
                self._http("GET", f"/json/close/{target['id']}")
            except OSError:
                pass

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self.proc.wait(timeout=5)
            self._reap_group()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)


    def _reap_group(self) -> None:
        """Renderer and helper processes (our own session) get 2 s to follow the browser out."""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _Session:
    def __init__(self, ws: WebSocket, timeout: float):
        self.ws, self.deadline, self.next_id = ws, time.monotonic() + timeout, 0
        self.events: list[dict] = []

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the page did not finish loading and checking in time")
        return left

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(self._left()))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method} failed: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str) -> None:
        if any(e["method"] == method for e in self.events):
            return
        while True:
            msg = json.loads(self.ws.recv(self._left()))
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                msg = json.loads(self.ws.recv(left))
            except TimeoutError:
                return
            if "method" in msg:
                self.events.append(msg)

    def run(self, url: str, screenshot: Path | None = None) -> PageCheck:
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        if screenshot is not None:  # a reader's window: 1100 px wide
            self.call("Emulation.setDeviceMetricsOverride", width=1100, height=1400,
                      deviceScaleFactor=1, mobile=False)
        nav = self.call("Page.navigate", url=url)
        if nav.get("errorText"):
            return PageCheck(url=url, errors=[f"navigation failed: {nav['errorText']}"])
        self.wait_event("Page.loadEventFired")
        self.drain(SETTLE)
        state = self.call("Runtime.evaluate", expression=_PAGE_STATE_JS,
                          awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in state:
            raise RuntimeError(f"page state script failed: {state['exceptionDetails']}")
        self.drain(0.05)
        value = state["result"]["value"]
        if screenshot is not None:
            shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": 0, "width": 1100,
                                   "height": min(value["layout"]["height"], 2400), "scale": 1})
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        return PageCheck(url=url, title=value["title"], text=value["text"], images=value["images"],
                         links=value["links"], errors=_errors(self.events), layout=value["layout"])


def _short(text: str, limit: int = 160) -> str:
    """Messages can quote whole data: URLs; keep them readable."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        method, p = e["method"], e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            out.append(f"console.{p['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            desc = d.get("exception", {}).get("description") or d.get("text", "")
            out.append(f"exception: {desc} at {d.get('url', '')}:{d.get('lineNumber', '?')}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".rstrip())
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            out.append(f"network: {p.get('errorText')} ({p.get('type', '?')} {p.get('requestId')})")
    return [_short(line) for line in out]


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    binary = shutil.which("chromium")
    if binary is None:
        message = ("chromium is not installed; install it with `apt-get install -y chromium` "
                   "to run the browser tests")
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: CI must install it, so this is a failure)")
        pytest.skip(message)
    b = Browser(binary)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick auto-mpg run; returns (runs root, report.html)."""
    from mllabs.cli import main

    runs = tmp_path_factory.mktemp("browser") / "runs"
    rc = main(["run", "auto-mpg", "--profile", "quick", "--out", str(runs), "--quiet",
               "--set", "epochs=3", "--set", "seeds=2"])
    assert rc == 0, f"mllabs run exited with {rc}"
    reports = sorted(runs.glob("auto-mpg/*/report.html"))
    assert len(reports) == 1, f"expected one report.html, found {reports}"
    return runs, reports[0]


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------

def test_checker_catches_broken_image_and_console_error(browser, tmp_path):
    """Negative control: the checker must fail a page that has a bad image and a console error."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body><p>bad page</p>'
                   '<img src="data:image/png;base64,AAAA" alt="broken">'
                   '<script>console.error("x"); console.warn("only a warning")</script>'
                   '</body></html>', "utf-8")
    page = browser.check(bad.as_uri())
    assert page.title == "bad" and "bad page" in page.text
    assert len(page.broken_images) == 1, page.images
    assert page.errors == ["console.error: x"], page.errors
    assert len(page.problems()) == 2

    missing = tmp_path / "missing.html"
    missing.write_text('<!DOCTYPE html><title>m</title><p>m</p><img src="nowhere.png">', "utf-8")
    page = browser.check(missing.as_uri())
    assert len(page.broken_images) == 1 and any("ERR_FILE_NOT_FOUND" in e for e in page.errors)

    thrower = tmp_path / "throw.html"
    thrower.write_text("<!DOCTYPE html><title>t</title><p>t</p>"
                       "<script>throw new Error('boom')</script>", "utf-8")
    assert any("boom" in e for e in browser.check(thrower.as_uri()).errors)

    good = tmp_path / "good.html"
    png = base64.b64encode(_tiny_png()).decode("ascii")
    good.write_text(f'<!DOCTYPE html><title>good</title><p>ok</p><img src="data:image/png;base64,{png}">',
                    "utf-8")
    clean = browser.check(good.as_uri())
    assert clean.problems() == [] and clean.images and clean.images[0]["width"] == 1


def test_report_renders_with_images_and_no_errors(browser, quick_run):
    _, report = quick_run
    page = browser.check(report.as_uri())
    assert page.problems() == [], "\n".join(page.problems())
    lab_title = json.loads((report.parent / "report.json").read_text("utf-8"))["title"]
    assert lab_title and page.title.startswith(lab_title), (page.title, lab_title)
    assert lab_title in page.text and len(page.text) > 200
    assert len(page.images) >= 1
    assert all(i["width"] > 0 and i["height"] > 0 for i in page.images), page.images


def test_runs_index_renders_and_links_to_the_report(browser, quick_run):
    runs, report = quick_run
    index = runs / "index.html"
    assert index.is_file()
    page = browser.check(index.as_uri())
    assert page.problems() == [], "\n".join(page.problems())
    assert page.title and "mllabs runs" in page.text
    hrefs = [link["href"] for link in page.links]
    assert report.as_uri() in hrefs, hrefs
    for href in hrefs:  # every link in the index points at a file that exists
        assert href.startswith("file://"), href
        assert Path(urllib.request.url2pathname(href[len("file://"):])).is_file(), href
    linked = browser.check(report.as_uri())
    assert linked.problems() == [], "\n".join(linked.problems())


# the labs whose reports are looked at page by page, each as small as it runs (seconds)
LAB_RUNS = {
    "auto-mpg": ["--set", "epochs=3", "--set", "seeds=2"],
    "mnist-lenet": ["--set", "train_size=600", "--set", "val_size=300"],
    "mnist-cnn": ["--set", "train_size=600"],
}


@pytest.fixture(scope="module")
def lab_reports(quick_run, tmp_path_factory):
    """report.html of each lab in LAB_RUNS (auto-mpg's is quick_run's), in one runs folder."""
    from mllabs.cli import main

    runs, auto_mpg = quick_run
    reports = {"auto-mpg": auto_mpg}
    for lab, sets in LAB_RUNS.items():
        if lab in reports:
            continue
        assert main(["run", lab, "--profile", "quick", "--out", str(runs), "--quiet", *sets]) == 0
        (found,) = runs.glob(f"{lab}/*/report.html")
        reports[lab] = found
    return reports


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    """Where the screenshots go: $MLLABS_SCREENSHOTS if set (CI keeps it as an artifact), else
    pytest's temporary folder; the path is printed either way."""
    folder = Path(os.environ.get("MLLABS_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nreport screenshots: {folder}")
    return folder


@pytest.mark.parametrize("lab", list(LAB_RUNS))
def test_report_opens_with_its_result(browser, lab_reports, screenshots, lab):
    """As rendered: the results box is the first thing after the title, before any figure or
    section; it holds the headline and the key figure; the raw metrics are collapsed at the end.
    A screenshot of the page's top is saved per lab."""
    shot = screenshots / f"{lab}.png"
    page = browser.check(lab_reports[lab].as_uri(), screenshot=shot)
    assert page.problems() == [], "\n".join(page.problems())
    layout = page.layout
    assert layout["result"] is not None, f"{lab}: no results box"
    assert layout["result"] <= layout["first_figure"], layout
    assert layout["first_outside_figure"] is None or layout["result"] < layout["first_outside_figure"]
    assert layout["result"] < layout["first_h2"], layout
    assert layout["result_has_figure"], f"{lab}: the results box shows no figure"
    assert layout["metrics_collapsed"] is True, layout
    doc = json.loads((lab_reports[lab].parent / "report.json").read_text("utf-8"))
    # the headline sentence, as the browser shows it, sits in the box: before the contents line
    first_words = doc["headline"].replace("**", "").split(" (")[0]
    assert first_words in page.text and page.text.index(first_words) < page.text.index("Contents:")
    assert "What it shows:" in page.text  # every figure's conclusion is rendered
    if "predict_command" in doc:
        assert doc["predict_command"] in page.text
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _tiny_png() -> bytes:
    """A valid 1x1 PNG, written here so the positive control needs no file."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))

    ihdr = struct.pack("!IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))
