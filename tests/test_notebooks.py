"""notebooks/: one per lab, each .ipynb in step with its jupytext .py, and executed top to bottom
on the quick profile (nbclient) in one kernel shared by all, its training step ending with the
metrics of `mllabs run LAB --profile quick --seed 0`, digit for digit (the four cheapest here;
every one with MLLABS_NOTEBOOKS=all).

CI (CI=true) installs mllabs[notebook]; there a missing nbclient fails instead of skipping."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import _NOTES, need, run_cli
from mllabs.labs import LABS

ROOT = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(ROOT.glob("*.py"))
# Executing a notebook trains its lab twice (its training step and its "your turn" cell) and the
# comparison trains it once more through the CLI: for all twelve that is over ten minutes on two
# cores. The suite executes the four cheapest; MLLABS_NOTEBOOKS=all executes every one.
CHEAP = ("boston-housing", "car-clustering", "regularization", "eye-screening")
EXECUTED = [p for p in SOURCES if os.environ.get("MLLABS_NOTEBOOKS") == "all" or p.stem in CHEAP]
TRAINED = [p.stem for p in EXECUTED if p.stem != "eye-screening"]  # eye-screening needs your photos
# no progress line: no fit() (car-clustering, boston-housing), or dozens of quiet ones
QUIET = ("car-clustering", "boston-housing", "mnist-optimizers", "regularization")
MARK = "MLLABS-RESULT "
# appended to each executed notebook: what its training step (`result`) ended with
PROBE = f"import json\nprint({MARK!r} + json.dumps({{'run_dir': str(result.run_dir), 'metrics': result.metrics}}))"


def comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "seconds" not in k}  # wall-clock times differ


def test_a_notebook_per_lab():
    assert sorted(p.stem for p in SOURCES) == sorted(LABS)
    assert sorted(p.stem for p in ROOT.glob("*.ipynb")) == sorted(LABS)


def test_ipynb_in_step_with_its_py():
    """The checked-in .ipynb is what jupytext makes of the .py (regenerate: jupytext --sync
    notebooks/*.py); cell ids, which jupytext draws at random, are left out."""
    jupytext = need("jupytext")
    nbformat = need("nbformat")

    def cells(nb):
        return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]

    stale = [p.name for p in SOURCES
             if cells(jupytext.read(p)) != cells(nbformat.read(p.with_suffix(".ipynb"), 4))]
    assert not stale, f"{stale}: run `jupytext --sync notebooks/*.py` and commit the .ipynb"


def test_first_cells_take_the_profile_and_install_mllabs():
    jupytext = need("jupytext")
    for path in SOURCES:
        cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
        assert "parameters" in cells[0].metadata.get("tags", []), path.name
        assert "MLLABS_PROFILE" in cells[0].source, path.name
        assert "except ImportError" in cells[1].source and "%pip install" in cells[1].source, path.name


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Every notebook run in one kernel (started once) in a scratch folder, quick profile."""
    need("nbclient")
    need("ipykernel")
    nbformat = need("nbformat")
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    folder = tmp_path_factory.mktemp("notebooks")
    # the kernel imports the mllabs under test, wherever it comes from (a relative PYTHONPATH
    # would not survive the kernel's own working directory)
    import mllabs

    here = str(Path(mllabs.__file__).resolve().parents[1])
    path = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "MLLABS_PROFILE": "quick", "PYTHONPATH": path}
    for name in ("MLLABS_DATA", "MLLABS_CACHE"):  # CI gives MLLABS_DATA=../shared/data
        if env.get(name):
            env[name] = str(Path(env[name]).resolve())
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(folder), env=env)
    results, seconds = {}, {}
    try:
        for path in EXECUTED:
            nb = nbformat.read(path.with_suffix(".ipynb"), 4)
            if path.stem in TRAINED:
                nb.cells.append(nbformat.v4.new_code_cell(PROBE))
            tick = time.perf_counter()
            NotebookClient(nb, km=km, timeout=900, allow_errors=False).execute()
            seconds[path.stem] = time.perf_counter() - tick
            results[path.stem] = nb
    finally:
        km.shutdown_kernel(now=True)
    _NOTES.append("notebooks executed (quick profile): " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
         + f"; {sum(seconds.values()):.0f} s in all")
    return results


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def probe(nb) -> dict:
    text = "".join(o.get("text", "") for o in outputs(nb) if o.output_type == "stream")
    return json.loads(text[text.index(MARK) + len(MARK):].splitlines()[0])


@pytest.mark.parametrize("lab", TRAINED)
def test_notebook_ends_as_the_cli_does(lab, executed, tmp_path):
    """The notebook's training step is `mllabs run LAB --profile quick --seed 0`: same metrics to
    the last digit (CPU), and the run it made is an ordinary one with its report."""
    got = probe(executed[lab])
    assert Path(got["run_dir"]).parent.name == lab
    assert run_cli("run", lab, "--profile", "quick", "--seed", "0", "--quiet", "--out", tmp_path) == 0
    (cli_run,) = tmp_path.glob(f"{lab}/*/metrics.json")
    cli = json.loads(cli_run.read_text())
    assert cli["status"] == "completed"
    assert comparable(got["metrics"]) == comparable(cli["metrics"])


def test_notebooks_show_figures_progress_and_predictions(executed):
    for lab in TRAINED:
        data = [o.get("data", {}) for o in outputs(executed[lab])]
        html = "".join(d.get("text/html", "") for d in data)
        assert "data:image/png;base64," in html, f"{lab}: the result showed no figure"
        assert "prediction" in html, f"{lab}: no predictions table"
        if lab not in QUIET:
            assert "<progress" in html, f"{lab}: no progress line"


def test_eye_screening_notebook_says_what_to_do_without_photos(executed):
    text = "".join(o.get("text", "") for o in outputs(executed["eye-screening"])
                   if o.output_type == "stream")
    assert "Set DATA_DIR" in text
