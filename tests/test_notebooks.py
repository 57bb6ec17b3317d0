"""notebooks/: one per lab, each .ipynb in step with its jupytext .py, and every one executed
top to bottom on the quick profile (nbclient) in one kernel shared by all, its training step
ending with the metrics of `mllabs run LAB --profile quick --seed 0`, digit for digit
(every one; MLLABS_NOTEBOOKS=auto-mpg,flowers just those).

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
CHOSEN = os.environ.get("MLLABS_NOTEBOOKS", "all")
EXECUTED = [p for p in SOURCES if CHOSEN == "all" or p.stem in CHOSEN.split(",")]
TRAINED = [p.stem for p in EXECUTED]
EYES = "eye-screening"  # needs photos: executed without (it says what to set) and with made-up ones
# One thread for every run here, in the kernel and for the CLI alike: the quick runs are too small
# to gain from a second thread, and on CI's two cores, shared with the other test process, a
# second one costs about twice the CPU time, waiting for its partner (benchmarks/notebooks.md).
THREADS = "1"
# no progress line: no fit() (car-clustering, boston-housing), or dozens of quiet ones
QUIET = ("car-clustering", "boston-housing", "mnist-optimizers", "regularization")
MARK = "MLLABS-RESULT "
# appended to each executed notebook: what its training step (`result`) ended with
PROBE = f"import json\nprint({MARK!r} + json.dumps({{'run_dir': str(result.run_dir), 'metrics': result.metrics}}))"


def comparable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if "seconds" not in k}  # wall-clock times differ


def test_a_notebook_per_lab():
    assert sorted(p.stem for p in SOURCES) == sorted(LABS)
    unknown = set(CHOSEN.split(",")) - set(LABS) - {"all"}
    assert not unknown, f"MLLABS_NOTEBOOKS names no notebook: {sorted(unknown)}"
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
def photos(tmp_path_factory):
    """Made-up fundus photos for eye-screening, the lab without a public data set."""
    from test_eye_screening import two_class_folder

    return two_class_folder(tmp_path_factory.mktemp("eyes"), n=8)


@pytest.fixture(scope="module")
def one_thread():
    """The CLI runs of this module on one thread, as the kernel's (see THREADS): torch's, and
    OpenMP's and BLAS's for scikit-learn and numpy (bike-sharing's boosted trees sum in another
    order on two threads, so the last digits would differ)."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(int(THREADS))
    with threadpool_limits(int(THREADS)):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def executed(tmp_path_factory, photos):
    """Every notebook run in one kernel (started once) in a scratch folder, quick profile;
    eye-screening twice: as it comes (no photos) under "eye-screening/none", and with DATA_DIR
    set to made-up photos."""
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
    env = {**os.environ, "MLLABS_PROFILE": "quick", "PYTHONPATH": path,
           "OMP_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS}
    env.pop("MLLABS_EYE_DATA", None)
    for name in ("MLLABS_DATA", "MLLABS_CACHE"):  # CI gives MLLABS_DATA=../shared/data
        if env.get(name):
            env[name] = str(Path(env[name]).resolve())
    # eye-screening as it comes (no photos: it trains nothing, a second) always runs
    jobs = [(f"{EYES}/none", nbformat.read(ROOT / f"{EYES}.ipynb", 4))]
    for path in EXECUTED:
        nb = nbformat.read(path.with_suffix(".ipynb"), 4)
        if path.stem == EYES:
            # what papermill does with a parameter: a cell after the tagged one
            at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
            nb.cells.insert(at + 1, nbformat.v4.new_code_cell(f"DATA_DIR = {str(photos)!r}"))
        nb.cells.append(nbformat.v4.new_code_cell(PROBE))
        jobs.append((path.stem, nb))
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(folder), env=env)
    results, seconds = {}, {}
    try:
        for name, nb in jobs:
            tick = time.perf_counter()
            NotebookClient(nb, km=km, timeout=900, allow_errors=False).execute()
            seconds[name] = time.perf_counter() - tick
            results[name] = nb
    finally:
        km.shutdown_kernel(now=True)
    _NOTES.append("notebooks executed (quick profile): " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
                  + f"; {sum(seconds.values()):.0f} s in all")
    return results


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def probe(nb) -> dict:
    text = "".join(o.get("text", "") for o in outputs(nb) if o.output_type == "stream")
    return json.loads(text[text.index(MARK) + len(MARK):].splitlines()[0])


@pytest.mark.parametrize("lab", TRAINED)
def test_notebook_ends_as_the_cli_does(lab, executed, photos, one_thread, tmp_path, note):
    """The notebook's training step is `mllabs run LAB --profile quick --seed 0`: same metrics to
    the last digit (CPU), and the run it made is an ordinary one with its report. The CLI runs
    in this process (cli.main), as its console script would."""
    got = probe(executed[lab])
    assert Path(got["run_dir"]).parent.name == lab
    data = ["--data-dir", photos] if lab == EYES else []
    tick = time.perf_counter()
    assert run_cli("run", lab, "--profile", "quick", "--seed", "0", "--quiet", "--out", tmp_path, *data) == 0
    note(f"notebooks: `mllabs run {lab} --profile quick` in-process {time.perf_counter() - tick:.1f} s")
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
    """As it comes (no DATA_DIR) the notebook explains what to set and trains nothing."""
    shown = outputs(executed[f"{EYES}/none"])
    assert "Set DATA_DIR" in "".join(o.get("text", "") for o in shown if o.output_type == "stream")
    assert "<progress" not in "".join(o.get("data", {}).get("text/html", "") for o in shown)
