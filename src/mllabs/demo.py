"""`mllabs demo RUN_DIR`: a finished run as a local web page (Gradio, the optional extra
`mllabs[demo]`) that a learner or a class can try.

- MNIST labs: draw a digit or upload a picture → the top 3 digits and the 28×28 image the network
  received after the MNIST-style preparation; predict's blank-image warning.
- flowers, eye-screening: upload a photo → the top classes and a Grad-CAM overlay.
- auto-mpg, boston-housing, bike-sharing, car-clustering: a form with the lab's raw fields
  (dropdowns for categories, the training data's ranges as hints) → predict's answer and its
  warning.

Every answer is the lab's own `predict` on a file: the uploaded picture as uploaded, the drawing
as the PNG the browser made, the form as a one-row CSV written like the ones `mllabs predict`
reads. So the page cannot drift from the command line, and the tests compare the two directly.
What the page shows besides (the 28×28 digit, the Grad-CAM overlay) comes from the same
functions predict runs (`prepare_digit`, the lab's predict with explain=True, `load_image`).

The server binds 127.0.0.1 unless --host says otherwise and shares publicly only with --share.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mllabs.errors import UserError

INSTALL = "pip install 'mllabs[demo]'"
DIGIT_ZOOM = 10     # the 28×28 digit is shown 280×280, each pixel a visible square
PHOTO_SHOWN = 320   # pixels a side of the photo the Grad-CAM overlay is drawn on


def import_gradio():
    """gradio, with its usage statistics off (a classroom demo calls no one); one line when the
    extra is missing."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise UserError(f"mllabs demo needs gradio, which is not installed; install the extra: "
                        f"{INSTALL}") from None
    return gradio


# ---------------------------------------------------------------------------- what a run offers

@dataclass
class Field:
    """One input of a tabular lab's form: a column of the CSV its predict reads."""
    name: str
    label: str
    choices: list | None = None          # a dropdown; None: a number
    low: float | None = None             # training range, shown as a hint
    high: float | None = None
    default: float | str | None = None
    note: str = ""

    @property
    def hint(self) -> str:
        parts = [self.note] if self.note else []
        if self.low is not None and self.high is not None:
            parts.append(f"training data: {self.low:g} to {self.high:g}")
        return "; ".join(parts)


@dataclass
class Form:
    fields: list[Field]
    unit: str = ""
    choose_table: list[str] = field(default_factory=list)  # bike-sharing: hour or day rows


def _middle(low: float, high: float, integer: bool = False) -> float:
    value = (low + high) / 2
    return float(round(value)) if integer else float(f"{value:.3g}")


def _numbers(names, spec_ranges: dict, notes: dict | None = None, integers=()) -> list[Field]:
    out = []
    for name in names:
        low, high = (spec_ranges.get(name) or [None, None])[:2]
        default = _middle(low, high, name in integers) if low is not None else 0.0
        out.append(Field(name, name, low=low, high=high, default=default,
                         note=(notes or {}).get(name, "")))
    return out


def _mean_std_ranges(names, mean, std) -> dict:
    """Runs saved before predict.json held ranges: the mean ± 2 standard deviations instead."""
    return {n: [float(m - 2 * s), float(m + 2 * s)] for n, m, s in zip(names, mean, std)}


def tabular_form(lab_name: str, spec: dict) -> Form:
    """The raw fields of a tabular lab's CSV, from its predict.json."""
    if lab_name == "auto-mpg":
        numeric = spec["numeric"]
        ranges = spec.get("ranges") or _mean_std_ranges(numeric, spec["mean"], spec["std"])
        fields = _numbers(numeric, ranges, {"weight": "pounds", "displacement": "cubic inches",
                                            "model_year": "70 = 1970"},
                          integers=("cylinders", "model_year"))
        origins = [str(o).capitalize() if o != "usa" else "USA" for o in spec["origins"].values()]
        fields.append(Field("origin", "origin", choices=origins, default=origins[0]))
        return Form(fields, "MPG")
    if lab_name == "boston-housing":
        from mllabs.labs.boston_housing import MEANING

        features = spec["features"]
        ranges = spec.get("ranges") or {
            f: [m - s / 2, m + s / 2] for f, m, s in zip(features, spec["mean"], spec["scale"])}
        fields = _numbers([f for f in features if f != "CHAS"], ranges, MEANING)
        if "CHAS" in features:
            fields.insert(features.index("CHAS"), Field("CHAS", "CHAS", choices=[0, 1], default=0,
                                                        note=MEANING.get("CHAS", "")))
        return Form(fields, "MEDV, $1000s")
    if lab_name == "car-clustering":
        from mllabs.labs.car_clustering import DESCRIBED

        features = spec["features"]
        ranges = spec.get("ranges") or _mean_std_ranges(features, spec["mean"], spec["std"])
        return Form(_numbers(features, ranges, DESCRIBED), "segment")
    if lab_name == "bike-sharing":
        tables = spec["tables"]
        main = tables.get("hour") or next(iter(tables.values()))
        enc = main["encoding"]
        ranges = main.get("ranges") or _mean_std_ranges(enc["numeric"], enc["mean"], enc["std"])
        notes = {"temp": "normalised: °C / 41", "atemp": "felt temperature, °C / 50",
                 "hum": "humidity / 100", "windspeed": "wind / 67"}
        fields = _numbers(enc["numeric"], ranges, notes)
        for column, values in enc["categories"].items():
            fields.append(Field(column, column, choices=list(values), default=values[0],
                                note="hourly table only" if column == "hr" else ""))
        return Form(fields, "rentals", choose_table=list(tables))
    raise UserError(f"{lab_name} has no form in mllabs demo")


def kind_of(lab, spec: dict) -> str:
    """digits, photos or form: how the page asks for an input."""
    if "pad_to" in spec:
        return "digits"
    if "image_size" in spec and hasattr(lab, "predict_network"):
        return "photos"
    return "form"


def finished(run_dir: Path):
    """The lab of a completed run, or predict's one-line error (mllabs.cli.finished_run)."""
    from mllabs.cli import finished_run

    return finished_run(Path(run_dir))


# ---------------------------------------------------------------------------- answers

class Demo:
    """The answers for one run: each takes what the page sends and returns what it shows."""

    def __init__(self, run_dir: Path, lab, spec: dict):
        self.run_dir, self.lab, self.spec = Path(run_dir), lab, spec
        self.kind = kind_of(lab, spec)
        self.form = tabular_form(lab.NAME, spec) if self.kind == "form" else None
        self.workdir = Path(tempfile.mkdtemp(prefix="mllabs-demo-"))

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def predict(self, paths: list[Path], **options) -> dict:
        """The lab's predict on one file; its one-line errors become the page's error box."""
        gr = import_gradio()
        try:
            return self.lab.predict(self.run_dir, paths, **options)[0]
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    @staticmethod
    def shown(row: dict) -> dict:
        """predict's answer as `mllabs predict --json` prints it, less the demo's file name and
        the arrays the page draws."""
        return {k: v for k, v in row.items() if k not in ("input", "grad_cam")}

    @staticmethod
    def top(row: dict) -> dict:
        return {t["label"]: t["probability"] for t in row.get("top", [])}

    # digits -----------------------------------------------------------------
    def digit(self, path: str | None):
        gr = import_gradio()
        from mllabs.data.digits import prepare_digit

        if not path:
            raise gr.Error("draw a digit or upload a picture first")
        row = self.predict([Path(path)])
        seen = prepare_digit(path)  # what predict fed the network, from the same function and file
        big = np.kron(seen, np.ones((DIGIT_ZOOM, DIGIT_ZOOM), np.uint8))
        best = row["top"][0]
        note = row.get("warning") or (
            f"**{best['label']}**, probability {best['probability']:.3f}. The picture shows the "
            "28×28 image the network received (the ink cropped, scaled into a 20×20 box and "
            "centred by its centre of mass, as MNIST's digits were).")
        return self.top(row), big, ("⚠ " + note if row.get("warning") else note), self.shown(row)

    def drawing(self, value):
        path = value.get("composite") if isinstance(value, dict) else value
        return self.digit(path)

    # photos -----------------------------------------------------------------
    def photo(self, path: str | None):
        gr = import_gradio()
        from mllabs.data.images import load_image
        from mllabs.models.gradcam import overlay

        if not path:
            raise gr.Error("upload a photo first")
        row = self.predict([Path(path)], explain=True)
        # the heatmap covers the centre crop the network saw; the same crop, larger, for the eye
        picture = overlay(load_image(path, PHOTO_SHOWN), row["grad_cam"])
        first = row["top"][0]
        note = (f"**{first['label']}**, probability {first['probability']:.3f}. The picture: "
                "Grad-CAM, where in the photo the evidence for that class lies (warm = more).")
        if row.get("warning"):
            note = "⚠ " + row["warning"]
        return self.top(row), picture, note, self.shown(row)

    # forms ------------------------------------------------------------------
    def row(self, *values):
        """The form's values → a one-row CSV like `mllabs predict` reads → the lab's predict."""
        gr = import_gradio()
        form = self.form
        values = list(values)
        table = values.pop(0) if form.choose_table else None
        names, cells, outside = [], [], []
        for f, value in zip(form.fields, values):
            if table == "day" and f.name == "hr":
                continue  # the daily table has no hour; its predict tells a day row by that
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise gr.Error(f"{f.label} is empty; fill in every field")
            names.append(f.name)
            cells.append(value)
            if f.choices is None and f.low is not None and not f.low <= float(value) <= f.high:
                outside.append(f"{f.label} = {float(value):g} lies outside the training data "
                               f"({f.low:g} to {f.high:g})")
        folder = Path(tempfile.mkdtemp(dir=self.workdir))
        path = folder / "row.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            writer.writerow(cells)
        row = self.predict([path])
        answer = row["prediction"]
        detail = row.get("segment") or (f"{answer:g} {row.get('unit') or form.unit}"
                                        if isinstance(answer, (int, float)) else str(answer))
        lines = [f"### {detail}"]
        if row.get("warning"):
            lines.append(f"⚠ {row['warning']}")
        if outside and not row.get("warning"):
            lines.append("⚠ " + "; ".join(outside) + ": the model is extrapolating")
        shutil.rmtree(folder, ignore_errors=True)
        return "\n\n".join(lines), self.shown(row)


# ---------------------------------------------------------------------------- the page

def build(run_dir: Path):
    """The Gradio app for a completed run (predict's error when it is not one)."""
    from mllabs import checkpoints

    run_dir = Path(run_dir)
    lab = finished(run_dir)
    spec = checkpoints.load_spec(run_dir, lab.NAME)
    checkpoints.refuse_user_network(run_dir, spec)  # predict's refusal, before any server starts
    gr = import_gradio()
    demo = Demo(run_dir, lab, spec)
    title = f"mllabs demo: {lab.TITLE}"
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"## {title}\nThe run `{run_dir}`; every answer is what "
                    f"`mllabs predict {run_dir} ...` gives for the same input.")
        if demo.kind == "digits":
            _digits_page(gr, demo)
        elif demo.kind == "photos":
            _photos_page(gr, demo)
        else:
            _form_page(gr, demo)
    app.mllabs_demo = demo
    return app


def _answer_json(gr):
    with gr.Accordion("predict's answer, as `mllabs predict --json` prints it", open=False):
        return gr.JSON(label="predict")


def _digits_page(gr, demo: Demo) -> None:
    with gr.Row():
        with gr.Column():
            with gr.Tab("Draw"):
                pad = gr.Sketchpad(type="filepath", format="png", image_mode="RGB",
                                   canvas_size=(280, 280), layers=False,
                                   label="draw a digit (pick the brush on the left first)",
                                   brush=gr.Brush(default_size=18, colors=["#000000"],
                                                  color_mode="fixed"))
                draw_go = gr.Button("Classify the drawing", variant="primary")
            with gr.Tab("Upload"):
                upload = gr.Image(type="filepath", image_mode=None, label="a picture of a digit",
                                  sources=["upload", "clipboard"])
                upload_go = gr.Button("Classify the picture", variant="primary")
        with gr.Column():
            label = gr.Label(num_top_classes=3, label="top 3 digits")
            seen = gr.Image(label="what the network received (28×28)", format="png",
                            interactive=False, height=280, width=280)
            note = gr.Markdown()
            answer = _answer_json(gr)
    outputs = [label, seen, note, answer]
    draw_go.click(demo.drawing, pad, outputs, api_name="classify_drawing")
    upload_go.click(demo.digit, upload, outputs, api_name="classify_upload")


def _photos_page(gr, demo: Demo) -> None:
    classes = ", ".join(demo.spec.get("classes", []))
    with gr.Row():
        with gr.Column():
            photo = gr.Image(type="filepath", image_mode=None, label=f"a photo ({classes})",
                             sources=["upload", "clipboard"])
            go = gr.Button("Classify", variant="primary")
        with gr.Column():
            label = gr.Label(num_top_classes=3, label="top classes")
            cam = gr.Image(label="Grad-CAM: where the network looked", format="png",
                           interactive=False)
            note = gr.Markdown()
            answer = _answer_json(gr)
    go.click(demo.photo, photo, [label, cam, note, answer], api_name="classify_photo")


def _form_page(gr, demo: Demo) -> None:
    form = demo.form
    inputs = []
    with gr.Row():
        with gr.Column():
            if form.choose_table:
                inputs.append(gr.Radio(form.choose_table, value=form.choose_table[0],
                                       label="table", info="an hour's rentals or a day's"))
            for f in form.fields:
                if f.choices is not None:
                    inputs.append(gr.Dropdown(f.choices, value=f.default, label=f.label,
                                              info=f.hint or None))
                else:
                    inputs.append(gr.Number(value=f.default, label=f.label, info=f.hint or None,
                                            step=0.001))
            go = gr.Button("Predict", variant="primary")
        with gr.Column():
            result = gr.Markdown()
            answer = _answer_json(gr)
    go.click(demo.row, inputs, [result, answer], api_name="predict")


# ---------------------------------------------------------------------------- serving

def launch(app, host: str = "127.0.0.1", port: int | None = None, share: bool = False):
    """Start serving in the background; the local address (and the public one with share)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, local, public = app.launch(server_name=host, server_port=port, share=share,
                                          prevent_thread_lock=True, quiet=True, ssr_mode=False,
                                          show_error=True, inbrowser=False)
    except OSError as exc:
        where = f"port {port}" if port else "the ports from 7860 on"
        raise UserError(f"cannot serve on {host}, {where} ({str(exc).splitlines()[0][:120]}); "
                        "pass a free --port or another --host") from None
    return local, public


def serve(run_dir: Path, host: str = "127.0.0.1", port: int | None = None,
          share: bool = False) -> int:
    """`mllabs demo`: build, serve, print the address, wait for Ctrl-C, stop cleanly."""
    app = build(run_dir)
    try:  # Ctrl-C at any moment from here on stops the server and cleans up
        local, public = launch(app, host, port, share)
        print(f"mllabs demo of {run_dir} ({app.mllabs_demo.lab.NAME}) at {local}", flush=True)
        if public:
            print(f"shared publicly at {public} (anyone with the address can use it)", flush=True)
        print("stop it with Ctrl-C", flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
        app.mllabs_demo.close()
    print("mllabs demo stopped", flush=True)
    return 0
