"""Trackers: a finished run's history and metrics reach TensorBoard / MLflow when installed."""

import json

import pytest
from conftest import need

from mllabs import trackers
from mllabs.errors import UserError


def finished_run(tmp_path):
    run = tmp_path / "runs" / "flowers" / "20261123-000000-abcdef"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"lab": "flowers", "lr": 0.002, "models": ["cnn", "resnet18"]}))
    (run / "metrics.json").write_text(json.dumps(
        {"lab": "flowers", "status": "completed", "seconds": 3.0,
         "metrics": {"cnn.test_accuracy": 0.8, "resnet.model": "resnet18", "bad": None}}))
    (run / "history.csv").write_text("model,epoch,train_loss,val_accuracy\n"
                                     "cnn,1,1.5,0.5\ncnn,2,1.2,0.6\nresnet18,1,1.6,\nresnet18,2,1.1,0.7\n")
    (run / "report.md").write_text("# report\n")
    return run


def test_history_becomes_one_curve_per_network_and_column(tmp_path):
    series = trackers.curves(finished_run(tmp_path))
    assert series["cnn/train_loss"] == [(1, 1.5), (2, 1.2)]
    assert series["resnet18/val_accuracy"] == [(2, 0.7)]  # the empty cell is skipped
    assert trackers.final_metrics(finished_run(tmp_path / "b")) == {"cnn.test_accuracy": 0.8}
    assert trackers.params(finished_run(tmp_path / "c"))["models"] == "cnn,resnet18"


def test_unknown_or_missing_tracker_is_a_user_error(monkeypatch):
    with pytest.raises(UserError, match="choose from"):
        trackers.parse_trackers(["wandb"])
    import builtins

    real = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(UserError, match=r"pip install 'mllabs\[mlflow\]'"):
        trackers.parse_trackers(["mlflow"])


def test_tensorboard_event_files_hold_the_curves(tmp_path):
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    target = trackers.to_tensorboard(finished_run(tmp_path))
    events = EventAccumulator(str(target))
    events.Reload()
    assert [(e.step, round(e.value, 4)) for e in events.Scalars("cnn/train_loss")] == [(1, 1.5), (2, 1.2)]


def test_mlflow_run_has_params_metrics_and_report(tmp_path):
    mlflow = need("mlflow")
    uri = (tmp_path / "mlruns").as_uri()
    run_id = trackers.to_mlflow(finished_run(tmp_path), tracking_uri=uri)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params["lr"] == "0.002"
    assert run.data.metrics["final.cnn.test_accuracy"] == pytest.approx(0.8)
    history = client.get_metric_history(run_id, "resnet18/train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.6), (2, 1.1)]
    assert "report.md" in {a.path for a in client.list_artifacts(run_id)}


def test_run_with_log_tensorboard_writes_event_files(tmp_path, capsys):
    need("tensorboard")
    from mllabs.cli import main

    assert main(["run", "boston-housing", "--profile", "quick", "--out", str(tmp_path / "runs"),
                 "--log", "tensorboard"]) == 0
    run = next((tmp_path / "runs" / "boston-housing").iterdir())
    assert any((run / "tensorboard").iterdir())
    assert "tensorboard:" in capsys.readouterr().err


def test_a_missing_engine_skips_here_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        need("mllabs_no_such_engine")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true installs every optional engine"):
        need("mllabs_no_such_engine")
    assert need("json") is json  # an installed one is simply imported
