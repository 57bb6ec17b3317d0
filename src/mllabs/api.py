"""The Python API: a lab run from a notebook or a script, and a lab's steps one by one.

    result = mllabs.run("auto-mpg", profile="quick", seed=0, epochs=50, hidden=(64, 64))
    result.metrics, result.history, result.report      # dict, DataFrame, report.html
    result.predict("cars.csv")                          # a DataFrame, one row per prediction
    mllabs.load("runs/auto-mpg/<run>")                  # the same object for an earlier run

`run` is `mllabs run`: the same runner.execute with the same config building, so the same run
directory, database row, report and metrics; keyword overrides go through the parsing of
`--set`, and bad arguments raise the UserError the command would print. `lab(...)` gives the
steps a notebook shows one at a time (the data, the network and its layer table, training with
the user's own torch.nn.Module in place of the lab's).
"""

from __future__ import annotations

import base64
import html
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mllabs.errors import UserError

# Which network the user's own module replaces, per lab; labs missing here refuse model= (the
# reason in REFUSED). Each lab listed calls ctx.network(...) where it builds that network.
USER_NETWORK = {
    "auto-mpg": "the fully connected network of every seed (and of its refit on all training cars)",
    "mnist-lenet": "LeNet-5",
    "mnist-cnn": "the shallow CNN",
    "mnist-best": "DigitNet, for every seed",
    "regularization": "the MLP, for every weight decay and seed",
}
REFUSED = {
    "activations": "compares activation functions inside LeNet-5 from one start; change "
                   "activations= instead",
    "bike-sharing": "trains a linear model and an MLP on two tables of different widths; change "
                    "mlp_hidden= or optimizer= instead",
    "boston-housing": "its networks are written in NumPy with hand-derived gradients, not torch "
                      "modules; change hidden= or lr= instead",
    "car-clustering": "clusters cars and trains no network",
    "mnist-optimizers": "trains its many MLPs stacked into one model (mllabs.stacked); change "
                        "hidden= instead",
    "flowers": "compares several networks on the same photos; choose them with models= (e.g. "
               "models=('cnn',))",
    "eye-screening": "compares several networks on your photos; choose them with models=",
}


def as_sets(overrides: dict[str, Any]) -> list[str]:
    """Keyword overrides as `--set` pairs, so they are parsed and checked exactly as the CLI's:
    hidden=(64, 64) and hidden="64,64" both become "hidden=64,64"."""
    def text(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "none"
        if isinstance(value, (tuple, list)):
            return ",".join(text(v) for v in value)
        return str(value)

    return [f"{key}={text(value)}" for key, value in overrides.items()]


def command_line(lab: str, profile: str | None, seed: int | None, sets: list[str],
                 device: str | None = None) -> str:
    """The `mllabs run` command that makes the same run (recorded in env.json and the report)."""
    words = ["mllabs", "run", lab, "--profile", profile or "default"]
    words += ["--seed", str(seed)] if seed is not None else []
    words += ["--device", device] if device else []
    for pair in sets:
        words += ["--set", pair]
    return shlex.join(words)


def check_model(lab: str, model) -> None:
    """A user's network is refused, before anything runs, by a lab that has no single network
    for it to replace."""
    if model is None or lab in USER_NETWORK:
        return
    from mllabs.labs import get_lab

    get_lab(lab)  # an unknown lab is named as such first
    raise UserError(f"{lab} cannot train your own network: it {REFUSED[lab]}; labs that can: "
                    f"{', '.join(USER_NETWORK)}")


def run(lab: str, profile: str | None = None, seed: int | None = None, *, model=None,
        device: str | None = None, out: str | Path = "runs", data_dir: str | Path | None = None,
        progress: bool = True, **overrides) -> "Result":
    """Run a lab exactly as `mllabs run LAB --profile P --seed S --set KEY=VALUE ...` does and
    return its Result. `model` is your own torch.nn.Module (or a function returning a new one)
    trained in place of the lab's network (USER_NETWORK says which); a string is the lab's own
    config key `model` (flowers, eye-screening: the network predict uses)."""
    from mllabs.runner import execute

    if isinstance(model, str):  # never a network: the config key of that name (flowers' `model`)
        overrides, model = {"model": model, **overrides}, None
    check_model(lab, model)
    sets = as_sets(overrides)
    outcome = execute(lab, profile=profile, sets=sets, seed=seed, device=device, out=Path(out),
                      data_dir=Path(data_dir) if data_dir is not None else None,
                      progress=progress, command=command_line(lab, profile, seed, sets, device),
                      network=model)
    return Result(outcome["run_dir"], model=model)


def load(run_dir: str | Path, model=None) -> "Result":
    """The Result of an earlier run, from its directory. `model`: for a run that trained your own
    network, a module of the same shape, so that predict can load the run's weights into it."""
    return Result(run_dir, model=model)


@dataclass(frozen=True)
class Figure:
    """One of a run's figures; shows itself (with its caption) in Jupyter."""

    path: Path
    caption: str = ""

    @property
    def name(self) -> str:
        return self.path.stem

    def _repr_png_(self) -> bytes:
        return self.path.read_bytes()

    def _repr_html_(self) -> str:
        return _figure_html(self, width="100%")


def _figure_html(fig: Figure, width: str) -> str:
    data = base64.b64encode(fig.path.read_bytes()).decode()
    return (f"<figure style='margin:0.5em 0'><img src='data:image/png;base64,{data}' "
            f"style='max-width:{width}'><figcaption><small>{html.escape(fig.caption)}</small>"
            "</figcaption></figure>")


class Result:
    """A run: its metrics, per-epoch history, report, figures and predict, read from the run
    directory (so `load` of an earlier run gives the same thing)."""

    def __init__(self, run_dir: str | Path, model=None):
        from mllabs.files import read_json

        self.run_dir = Path(run_dir)
        if not (self.run_dir / "config.json").is_file():
            raise UserError(f"{self.run_dir} is not a run directory (no config.json); pass a folder "
                            "made by `mllabs run` or mllabs.run, e.g. runs/<lab>/<run>")
        config, ended = read_json(self.run_dir / "config.json"), {}
        if (self.run_dir / "metrics.json").is_file():
            ended = read_json(self.run_dir / "metrics.json")
        if not isinstance(config, dict) or not isinstance(ended, dict):
            raise UserError(f"{self.run_dir}: config.json or metrics.json is damaged (not a JSON "
                            "object); re-run the lab")
        self.config: dict = config
        self.lab: str = config.get("lab", self.run_dir.parent.name)
        self.profile: str = config.get("profile", "")
        self.status: str = ended.get("status", "running")  # no metrics.json: cut off mid-run
        self.metrics: dict = ended.get("metrics", {})
        self.seconds: float | None = ended.get("seconds")
        self.model = model  # the user's network, where the run trained one

    def __repr__(self) -> str:
        return f"<mllabs.Result {self.lab} {self.status} {self.run_dir}>"

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"

    @property
    def history(self):
        """history.csv as a DataFrame: one row per epoch (and per network or seed, where a lab
        trains several); empty for labs without epochs."""
        import pandas as pd

        path = self.run_dir / "history.csv"
        return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()

    @property
    def figures(self) -> list[Figure]:
        """The report's figures in the report's order, with their captions."""
        from mllabs.files import read_json

        path = self.run_dir / "report.json"
        doc = read_json(path) if path.is_file() else {}
        blocks = [b for s in doc.get("sections", []) for b in s.get("blocks", [])
                  if b.get("kind") == "figure"]
        return [Figure(self.run_dir / b["file"], b.get("caption", "")) for b in blocks
                if (self.run_dir / b["file"]).is_file()]

    def figure(self, name: str) -> Figure:
        found = {f.name: f for f in self.figures}
        if name not in found:
            raise UserError(f"{self.lab}'s run has no figure {name!r}; it has: {', '.join(found)}")
        return found[name]

    def predict(self, *inputs, values=None):
        """Predict with this run, as `mllabs predict` does, and return a DataFrame (one row per
        prediction). Each input is a file (photo, digit image, CSV) or rows: a DataFrame or a
        list of dicts with the columns the lab's CSV takes. `values`: one typed row for labs
        that take it (boston-housing), a string "v1,v2,..." or a sequence of numbers."""
        import pandas as pd

        from mllabs.checkpoints import user_network
        from mllabs.labs import get_lab

        lab = get_lab(self.lab)
        if self.status != "completed":
            raise UserError(f"{self.run_dir} ended {self.status}, so it has no model to predict "
                            "with; use a completed run")
        if values is not None:
            if not hasattr(lab, "predict_values"):
                raise UserError(f"{self.lab} predicts from files, not from values; pass files or rows")
            if inputs:
                raise UserError("give either inputs or values=, not both")
            text = values if isinstance(values, str) else ",".join(map(str, values))
            return pd.DataFrame(self._with_model(user_network, lab.predict_values, self.run_dir, text))
        if not inputs:
            raise UserError("nothing to predict: pass files or rows"
                            + (" or values=" if hasattr(lab, "predict_values") else ""))
        with tempfile.TemporaryDirectory(prefix="mllabs-rows-") as tmp:
            paths, named = [], {}
            for k, item in enumerate(inputs):
                if isinstance(item, (str, Path)):
                    if not Path(item).is_file():
                        raise UserError(f"{item} does not exist or is not a file")
                    paths.append(Path(item))
                    continue
                rows = pd.DataFrame(item)  # a DataFrame, or a list of dicts
                paths.append(Path(tmp) / f"rows{k}.csv")
                rows.to_csv(paths[-1], index=False)
                named[str(paths[-1])] = "rows" if len(inputs) == 1 else f"rows{k}"
            results = self._with_model(user_network, lab.predict, self.run_dir, paths)
        for r in results:  # rows were a temporary file: say "rows:2", not its path
            for path, name in named.items():
                r["input"] = str(r["input"]).replace(path, name)
        return pd.DataFrame(results)

    def _with_model(self, user_network, fn, *args):
        if self.model is None:
            return fn(*args)
        import torch

        template = self.model if isinstance(self.model, torch.nn.Module) else self.model()
        with user_network(template):
            return fn(*args)

    def _repr_html_(self) -> str:
        from mllabs.labs import get_lab

        try:
            title = get_lab(self.lab).TITLE
        except UserError:
            title = self.lab
        headline = [(k, v) for k, v in self.metrics.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                    and "seconds" not in k][:8]
        rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{v:.6g}</td></tr>"
                       for k, v in headline)
        took = f" in {self.seconds:.1f} s" if self.seconds is not None else ""
        figures = "".join(_figure_html(f, "640px") for f in self.figures)
        return (f"<div><h3>{html.escape(title)}: {html.escape(self.status)}{took}</h3>"
                f"<p>profile <code>{html.escape(self.profile)}</code>, run directory "
                f"<code>{html.escape(str(self.run_dir))}</code>, "
                f"<a href='{html.escape(str(self.report))}' target='_blank'>report.html</a></p>"
                f"<table>{rows}</table>{figures}</div>")


@dataclass(frozen=True)
class Markdown:
    """Text that Jupyter renders as Markdown (and prints as itself elsewhere)."""

    text: str

    def _repr_markdown_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


class LabSteps:
    """A lab's steps one at a time, for a notebook: its text, config, data, network and layer
    table, then training (with your own network if you like) into an ordinary run."""

    def __init__(self, name: str, profile: str | None = None, seed: int | None = None, *,
                 device: str | None = None, out: str | Path = "runs",
                 data_dir: str | Path | None = None, progress: bool = True, **overrides):
        from mllabs.config import build_config
        from mllabs.labs import get_lab

        self.name, self.profile, self.seed, self.device = name, profile, seed, device
        self.out, self.data_dir, self.progress = Path(out), data_dir, progress
        self.overrides = overrides
        self.module: ModuleType = get_lab(name)
        # the config run() will build, built now so a bad key or value fails at the first cell
        self.config = build_config(self.module.Config, self.module.PROFILES, profile or "default",
                                   as_sets(overrides), seed=seed, device=device)
        self._data = None
        self.result: Result | None = None

    def __repr__(self) -> str:
        return f"<mllabs lab {self.name}, profile {self.profile or 'default'}>"

    @property
    def title(self) -> str:
        return self.module.TITLE

    def about(self) -> Markdown:
        """The lab's own text: its title, the report's opening paragraph, its module docstring."""
        doc = (self.module.__doc__ or "").strip()
        return Markdown(f"## {self.module.TITLE}\n\n{self.module.SUMMARY}\n\n{doc}".strip())

    def options(self):
        """Every config key with its value in this config, its type and help (`mllabs config`)."""
        import typing

        import pandas as pd

        from mllabs.config import _type_name, field_specs

        hints = typing.get_type_hints(self.module.Config)
        return pd.DataFrame([{"key": f.name, "value": getattr(self.config, f.name),
                              "type": _type_name(hints[f.name]), "help": f.metadata.get("help", "")}
                             for f in field_specs(self.module.Config)]).set_index("key")

    @property
    def replaces(self) -> str:
        """Which network model= replaces in this lab, or why it cannot."""
        if self.name in USER_NETWORK:
            return f"your module replaces {USER_NETWORK[self.name]}"
        return f"{self.name} takes no network of yours: it {REFUSED[self.name]}"

    def data(self):
        """The lab's data, loaded and checked as a run loads it (lab.prepare); read once."""
        if self._data is None:
            self._data = self.module.prepare(
                self.config, Path(self.data_dir) if self.data_dir is not None else None)
        return self._data

    def networks(self) -> dict:
        """{name: torch.nn.Module}: the lab's networks, freshly built, untrained."""
        self._need_networks()
        return {name: model for name, (model, _) in self.module.networks(self.config).items()}

    def model(self):
        """The lab's network (the first, where it trains several), freshly built."""
        return next(iter(self.networks().values()))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample the lab's network takes (channels, height, width or features)."""
        self._need_networks()
        return tuple(next(iter(self.module.networks(self.config).values()))[1])

    def summary(self, model=None):
        """The layer table of the report as a DataFrame: per layer the output shape, parameters,
        multiplications, additions and comparisons for one sample, totals in the last row. With
        `model` (your module), that module's table at the lab's input shape."""
        import pandas as pd

        from mllabs.runner import lab_networks

        self._need_networks()
        tables = lab_networks(self.module, self.config, [model] if model is not None else None)
        if len(tables) == 1:
            return pd.DataFrame(tables[0][2])
        return pd.concat([pd.DataFrame(rows).assign(network=name)[["network", *rows[0]]]
                          for name, _, rows in tables], ignore_index=True)

    def _need_networks(self) -> None:
        if not hasattr(self.module, "networks"):
            raise UserError(f"{self.name} trains no neural network, so it has no network to show")

    def train(self, model=None, **overrides) -> Result:
        """Train: an ordinary run (run directory, report, database row), the same as `mllabs run`
        with this lab's profile, seed and overrides plus these. `model` is your own
        torch.nn.Module (or a function returning a fresh one) in place of the lab's network."""
        seed, device = overrides.pop("seed", self.seed), overrides.pop("device", self.device)
        self.result = run(self.name, self.profile, seed, model=model, device=device,
                          out=self.out, data_dir=self.data_dir, progress=self.progress,
                          **{**self.overrides, **overrides})
        return self.result


def lab(name: str, profile: str | None = None, seed: int | None = None, **options) -> LabSteps:
    """A lab's steps one at a time (see LabSteps); the same options as run()."""
    return LabSteps(name, profile, seed, **options)


# ---------------------------------------------------------------------------- looking at data

@dataclass(frozen=True)
class Picture:
    """A PNG that Jupyter shows inline, whatever matplotlib backend is active (the report's
    figures switch matplotlib to Agg, which would keep notebook figures from showing)."""

    png: bytes

    def _repr_png_(self) -> bytes:
        return self.png

    def save(self, path: str | Path) -> Path:
        Path(path).write_bytes(self.png)
        return Path(path)


def picture(fig) -> Picture:
    """A matplotlib figure as a Picture (and closed)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return Picture(buf.getvalue())


def image_grid(images, labels=None, columns: int = 8, size: float = 1.3) -> Picture:
    """Images (N×H×W greyscale or N×H×W×3 uint8) in a grid, each titled by its label."""
    import matplotlib

    matplotlib.use("Agg")  # pyplot without a display; picture() hands Jupyter the PNG itself
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size, rows * size * 1.15),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(images[k], cmap="gray" if images[k].ndim == 2 else None)
            if labels is not None:
                ax.set_title(str(labels[k]), fontsize=9)
    return picture(fig)
