"""The activations lab on small slices of the real MNIST files: sigmoid against ReLU in LeNet-5."""

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from digit_images import render_digits

from mllabs.data import mnist
from mllabs.models.inspect import BatchRecorder, GradientRecorder, weight_layers
from mllabs.models.lenet import LeNet5, channels_last_lenet

LAYERS = ["conv1", "conv2", "fc1", "fc2", "fc3"]


@pytest.fixture(scope="module")
def act_run(tmp_path_factory):
    """Both activations, one seed, two short epochs on 1,000 digits."""
    out = tmp_path_factory.mktemp("runs")
    assert run_cli("run", "activations", "--profile", "quick", "--quiet", "--out", out,
                   "--set", "epochs=2", "--set", "train_size=1000", "--set", "every=4") == 0
    (run_dir,) = (out / "activations").iterdir()
    return run_dir


def tables(run_dir):
    doc = json.loads((run_dir / "report.json").read_text())
    return {b["caption"]: b for s in doc["sections"] for b in s["blocks"] if b["kind"] == "table"}


def test_sigmoid_gets_far_smaller_gradients_near_the_input(act_run, note):
    m = json.loads((act_run / "metrics.json").read_text())["metrics"]
    assert {"sigmoid.test_accuracy", "relu.test_accuracy", "first_layer_grad_ratio"} <= set(m)
    assert m["sigmoid.grad.conv1"] < m["relu.grad.conv1"]
    # the gap grows layer by layer on the way down: largest at the first convolution
    ratios = [m[f"relu.grad.{layer}"] / m[f"sigmoid.grad.{layer}"] for layer in LAYERS]
    assert ratios[0] == max(ratios) and ratios[0] > 10
    assert m["first_layer_grad_ratio"] == pytest.approx(ratios[0], rel=1e-6)
    note(f"activations (quick, 2 epochs on 1,000 digits): first-layer gradient ReLU/sigmoid "
         f"{ratios[0]:.0f}×")


def test_report_has_one_gradient_row_per_layer_and_epoch(act_run):
    (table,) = [t for c, t in tables(act_run).items() if c.startswith("Mean |gradient|")]
    assert [(row[0], row[1]) for row in table["rows"]] == [(str(e), layer) for e in (1, 2)
                                                           for layer in LAYERS]
    assert table["columns"][2:] == ["sigmoid: mean gradient size", "ReLU: mean gradient size",
                                    "ReLU ÷ sigmoid"]
    history = (act_run / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2 * 2  # activation × epoch
    figures = {p.name for p in (act_run / "figures").iterdir()}
    assert {"curves.png", "curves_per_update.png", "gradients.png"} <= figures
    md = (act_run / "report.md").read_text()
    cfg = json.loads((act_run / "config.json").read_text())
    assert f"{cfg['optimizer']} at learning rate {cfg['lr']:g}" in md and "1,000 training digits" in md


def test_predict_reads_digit_images(act_run, tmp_path, capsys):
    made = render_digits(tmp_path / "digits", per_digit=1)
    assert run_cli("predict", act_run, *[p for p, _ in made[:3]], "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 3 and all(len(r["top"]) == 3 for r in results)


def test_recorders_keep_one_value_per_layer_per_update_and_epoch(data_root):
    from mllabs.labs.activations import Config
    from mllabs.train import cross_entropy, fit

    data = mnist.load()
    x = mnist.normalise(data.train_x[:256], pad_to=32)
    y = torch.from_numpy(data.train_y[:256].astype(np.int64))
    model = LeNet5("sigmoid")
    assert [name for name, _ in weight_layers(model)] == LAYERS
    grads, batches = GradientRecorder(model), BatchRecorder(cross_entropy)
    result = fit(model, (x, y), Config(epochs=2, batch_size=64), loss_fn=batches,
                 also={"test": (x[:100], y[:100])}, progress=False, after_backward=grads)
    assert grads.per_update().shape == (result.updates, 5) == (8, 5)
    per_epoch = grads.per_epoch()
    assert sorted(per_epoch) == [1, 2] and all(v.shape == (5,) and (v > 0).all() for v in per_epoch.values())
    # only training batches are kept, not the per-epoch evaluations of the test slice
    assert batches.per_update().shape == (8, 2)
    losses = batches.per_update()[:, 0].reshape(2, 4).mean(1)  # 4 equal batches per epoch
    assert losses == pytest.approx([r["train_loss"] for r in result.history], rel=1e-5)


@pytest.mark.parametrize("value, fragment", [("sigmoid,sigmoid", "names one twice"),
                                             ("swish", "not one of"), ("", "is empty")])
def test_bad_activations_end_with_exit_2(tmp_path, capsys, value, fragment):
    assert run_cli("run", "activations", "--profile", "quick", "--out", tmp_path,
                   "--set", f"activations={value}") == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not (tmp_path / "activations").exists()


def test_both_activations_start_from_the_same_weights():
    # the report's claim that the activation is the only difference between the runs of a seed
    torch.manual_seed(3)
    sigmoid = LeNet5("sigmoid").state_dict()
    torch.manual_seed(3)
    relu = LeNet5("relu").state_dict()
    assert sigmoid.keys() == relu.keys() and all(torch.equal(sigmoid[k], relu[k]) for k in sigmoid)


def test_figure_conclusions_follow_made_up_numbers():
    from mllabs.labs.activations import accuracy_conclusion, gradient_conclusion, plateau_conclusion

    text = accuracy_conclusion({"ReLU": [0.98, 0.97], "sigmoid": [0.11, 0.12]})
    assert text.startswith("ReLU ends highest, at 97.50 %") and "86.00 points above sigmoid" in text
    assert "every seed below every one of ReLU" in text
    flipped = accuracy_conclusion({"ReLU": [0.50, 0.40], "sigmoid": [0.90, 0.45]})
    assert flipped.startswith("Sigmoid ends highest") and "every seed" not in flipped
    text = plateau_conclusion({"ReLU": [40, 60], "sigmoid": [None, None]}, 900)
    assert "ReLU's fell below 2.0 after 40–60 updates" in text and "sigmoid's batch loss never fell" in text
    assert "(1 seed(s) never)" in plateau_conclusion({"sigmoid": [None, 700]}, 900)
    assert gradient_conclusion(1, "conv1", "fc3", 129.0, 0.096).endswith("129 times sigmoid's and its fc3 gradient 0.096 times: the gap opens towards the input.")
    assert gradient_conclusion(1, "conv1", "fc3", 0.01, 1.0).endswith("the gap narrows towards the input.")


def test_the_labs_channels_last_lenet_is_the_same_function_and_checkpoint():
    """Both MNIST LeNet labs train channels-last (faster on CPU); the layout must change neither
    what the network computes nor what its checkpoint holds."""
    for act in ("relu", "sigmoid"):
        torch.manual_seed(3)
        fast = channels_last_lenet(act)
        torch.manual_seed(3)
        plain = LeNet5(act)
        conv2 = 3  # conv1's weight has one input channel: both layouts at once
        assert fast.features[conv2].weight.is_contiguous(memory_format=torch.channels_last)
        assert not plain.features[conv2].weight.is_contiguous(memory_format=torch.channels_last)
        x = torch.randn(32, 1, 32, 32)
        y = torch.randint(0, 10, (32,))
        for net in (fast, plain):
            torch.nn.functional.cross_entropy(net(x), y).backward()
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fast.features[conv2].weight.grad, plain.features[conv2].weight.grad,
                                   rtol=1e-3, atol=1e-6)
        reloaded = LeNet5(act)
        reloaded.load_state_dict(fast.state_dict())
        torch.testing.assert_close(reloaded(x), plain(x), rtol=1e-4, atol=1e-5)
