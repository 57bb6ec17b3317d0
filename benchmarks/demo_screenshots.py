"""Screenshots of `mllabs demo` answering, taken in headless Chromium (docs/demo-*.png).

    python benchmarks/demo_screenshots.py --mnist runs/mnist-lenet/<run> \
        --flowers runs/flowers/<run> --photo PHOTO.jpg --auto-mpg runs/auto-mpg/<run> --out docs

For the MNIST run a digit is drawn on the sketchpad with the mouse (Chromium's input events,
as a hand would) and classified; for flowers the photo is uploaded; for auto-mpg the form is
sent with one car's values. The browser is driven over the DevTools protocol with the client
in tests/test_report_browser.py.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_report_browser import Browser, WebSocket, _Session  # noqa: E402

from mllabs import demo  # noqa: E402

TIMEOUT = 120.0


class Page:
    def __init__(self, browser: Browser, url: str):
        self.browser = browser
        self.target = browser._http("PUT", "/json/new?about:blank")
        self.ws = WebSocket(self.target["webSocketDebuggerUrl"], timeout=TIMEOUT)
        self.s = _Session(self.ws, TIMEOUT)
        for domain in ("Page", "Runtime", "DOM"):
            self.s.call(f"{domain}.enable")
        self.s.call("Emulation.setDeviceMetricsOverride", width=1280, height=860,
                    deviceScaleFactor=1, mobile=False)
        self.s.call("Page.navigate", url=url)
        self.s.wait_event("Page.loadEventFired")

    def js(self, expression: str):
        out = self.s.call("Runtime.evaluate", expression=expression, returnByValue=True,
                          awaitPromise=True)
        return out["result"].get("value")

    def wait_for(self, text: str, seconds: float = 60) -> None:
        end = time.monotonic() + seconds
        while text not in (self.js("document.body.innerText") or ""):
            if time.monotonic() > end:
                self.shot(Path("demo-timeout.png"))  # what the page showed instead
                raise TimeoutError(f"{text!r} never appeared (the page: demo-timeout.png)")
            self.s.drain(0.25)

    def click_text(self, text: str) -> None:
        found = self.js(f"""(() => {{
            const b = [...document.querySelectorAll('button')].find(e => e.innerText.trim() === {json.dumps(text)});
            if (b) b.click(); return !!b; }})()""")
        if not found:
            raise RuntimeError(f"no button {text!r}")

    def click_at(self, selector: str) -> None:
        """A real mouse click in the middle of the element (the sketchpad's tools ignore a
        script's click()). Waits for it: Gradio draws the sketchpad's toolbar after the text."""
        end, where = time.monotonic() + TIMEOUT, None
        while where is None:
            where = self.js(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
                if (!e) return null; const r = e.getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
            if where is None and time.monotonic() > end:
                raise TimeoutError(f"{selector} never appeared on the page")
            self.s.drain(0.25)
        x, y = where
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.s.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                        clickCount=1)
        self.s.drain(0.5)

    def upload(self, path: Path, index: int = 0) -> None:
        root = self.s.call("DOM.getDocument", depth=-1, pierce=True)["root"]["nodeId"]
        nodes = self.s.call("DOM.querySelectorAll", nodeId=root, selector="input[type=file]")["nodeIds"]
        self.s.call("DOM.setFileInputFiles", files=[str(Path(path).resolve())], nodeId=nodes[index])

    def draw(self, points: list[tuple[float, float]]) -> None:
        """Pick the brush, then a stroke through `points` (0..1 of the square drawing area in the
        middle of the sketchpad), as mouse events."""
        self.click_at("button[aria-label=Brush]")
        box = self.js("""(() => { const c = [...document.querySelectorAll('canvas')]
            .filter(e => e.getBoundingClientRect().width > 100)[0];
            const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()""")
        x0, y0, w, h = box
        side = 0.8 * min(w, h)
        left, top = x0 + (w - side) / 2, y0 + (h - side) / 2

        def at(p):
            return {"x": left + p[0] * side, "y": top + p[1] * side}

        self.s.call("Input.dispatchMouseEvent", type="mouseMoved", **at(points[0]))
        self.s.call("Input.dispatchMouseEvent", type="mousePressed", button="left", clickCount=1,
                    buttons=1, **at(points[0]))
        for a, b in zip(points, points[1:]):
            for t in np.linspace(0.1, 1.0, 10):
                p = (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
                self.s.call("Input.dispatchMouseEvent", type="mouseMoved", button="left",
                            buttons=1, **at(p))
        self.s.call("Input.dispatchMouseEvent", type="mouseReleased", button="left", clickCount=1,
                    **at(points[-1]))
        self.s.drain(0.5)

    def shot(self, path: Path) -> None:
        self.s.drain(1.0)  # let the answer's images finish drawing
        data = self.s.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"wrote {path}")

    def close(self) -> None:
        self.ws.close()
        self.browser._http("GET", f"/json/close/{self.target['id']}")


def serve(run_dir: Path):
    app = demo.build(run_dir)
    url, _ = demo.launch(app, "127.0.0.1")
    return app, url


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", type=Path)
    parser.add_argument("--flowers", type=Path)
    parser.add_argument("--photo", type=Path, help="the photo uploaded to the flowers demo")
    parser.add_argument("--auto-mpg", dest="auto_mpg", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    browser = Browser(shutil.which("chromium") or "chromium")
    try:
        if args.mnist:
            app, url = serve(args.mnist)
            page = Page(browser, url)
            page.wait_for("Classify the drawing")
            # a 7 drawn as a hand would: the top bar, then the downstroke
            page.draw([(0.28, 0.25), (0.72, 0.25), (0.45, 0.8)])
            page.click_text("Classify the drawing")
            page.wait_for("probability")
            page.shot(args.out / "demo-mnist.png")
            page.close()
            app.close()
        if args.flowers:
            app, url = serve(args.flowers)
            page = Page(browser, url)
            page.wait_for("Classify")
            page.upload(args.photo)
            page.s.drain(2.0)
            page.click_text("Classify")
            page.wait_for("probability")
            page.shot(args.out / "demo-flowers.png")
            page.close()
            app.close()
        if args.auto_mpg:
            app, url = serve(args.auto_mpg)
            page = Page(browser, url)
            page.wait_for("Predict")
            page.click_text("Predict")
            page.wait_for("MPG")
            page.shot(args.out / "demo-auto-mpg.png")
            page.close()
            app.close()
    finally:
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
