"""Experiment tracking (``--set loggers=[mlflow,tensorboard]``), for real: a local MLflow server that the run reports
to and that the test reads back, TensorBoard event files read back with TensorBoard's own reader, and the failures
that must never cost a run (a logger that raises, a server that does not answer) or that must stop it before any
work (an unknown logger, a package that is not installed).

Where mlflow or tensorboard is not installed, the tests that need it skip, except under CI (``CI=true``), which
installs ``.[dev]`` (that includes both): there a missing package is a failure.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import tlcore
from tests.conftest import ctrl_c_after_epoch
from tlcore.config import resolve_config
from tlcore.errors import TlcoreWarning
from tlcore.plugins import PluginHost
from tlcore.specs import Logger, LoggerContext, RunLogger, RunStatus
from tlcore.training import tracking
from tlcore.training.run import run_training

Tl = Callable[..., tuple[int, str, str]]
BIN = Path(sys.executable).parent
EPOCHS = 2
#: A full fine-tuning of timm's tiny random ``test_resnet`` on 32 px images: a few seconds per run.
FAST = [
    "--preset", "fine-tuning", "--quiet",
    "--set", "backbone=test_resnet", "--set", "weights=none", "--set", "strategy=full", "--set", "image_size=32",
    "--set", "batch_size=8", "--set", f"epochs={EPOCHS}", "--set", "checkpoint=last", "--set", "tta=false",
    "--set", "bootstrap=0", "--set", "shift_check=false",
]  # fmt: skip


def need(name: str) -> ModuleType:
    """The module; the test skips where it is missing, except under CI, where that is a failure."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return importlib.import_module(name)
    return pytest.importorskip(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path]) -> Path:
    return make_folder(tmp_path_factory.mktemp("loggers") / "data", {"train": 4, "val": 2, "test": 2}, seed=3)


@pytest.fixture(scope="module", autouse=True)
def mlflow_boot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any] | None]:
    """Starts a local MLflow tracking server (SQLite store, local artifacts) as the module begins, so that it boots
    while the tests that need no server run; stops it at the end. None where mlflow is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        yield None
        return
    tmp = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    command = [
        str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
        "--default-artifact-root", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job runner: faster start
    log_path = tmp / "server.log"
    with log_path.open("w") as log:
        # Its own process group: `mlflow server` starts uvicorn as a child, and teardown ends both.
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            yield {"process": server, "uri": f"http://127.0.0.1:{port}", "log": log_path}
        finally:
            try:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)


@pytest.fixture(scope="module")
def mlflow_server(mlflow_boot: dict[str, Any] | None) -> str:
    """The URI of the module's MLflow server, once it answers on /health."""
    need("mlflow")
    assert mlflow_boot is not None
    server, uri, log = mlflow_boot["process"], mlflow_boot["uri"], mlflow_boot["log"]
    deadline = time.monotonic() + 180  # a few seconds on an idle machine; far more on a busy one
    while True:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return uri
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not answer in 180 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def test_loggers_that_fail_warn_once_and_the_run_completes(
    data: Path, tl: Tl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow pointed at a port where no server answers, and TensorBoard raising in epoch 2: one warning each,
    and the run is complete."""
    need("mlflow")
    need("tensorboard")
    from tlcore.default_plugins import loggers

    real_epoch = loggers.TensorBoardRunLogger.log_epoch
    closed: list[str] = []
    real_close = loggers.TensorBoardRunLogger.close

    def epoch_2_fails(self: Any, epoch: int, metrics: Mapping[str, float]) -> None:
        if epoch == 2:
            raise OSError("disk full")
        real_epoch(self, epoch, metrics)

    def close(self: Any, status: RunStatus) -> None:
        closed.append(status)
        real_close(self, status)

    monkeypatch.setattr(loggers.TensorBoardRunLogger, "log_epoch", epoch_2_fails)
    monkeypatch.setattr(loggers.TensorBoardRunLogger, "close", close)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail at once, not after MLflow's retries
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    run_dir = tmp_path / "run"
    code, out, err = tl(
        "train", "--data", data, "--output", run_dir, *FAST,
        "--set", "loggers=[mlflow,tensorboard]", "--set", f"mlflow_tracking_uri=http://127.0.0.1:{free_port()}",
    )  # fmt: skip
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: logger")]
    assert len(warnings) == 2, err
    assert warnings[0].startswith("warning: logger 'mlflow' failed in start (")
    assert warnings[1].startswith("warning: logger 'tensorboard' failed in log_epoch (OSError: disk full)")
    assert "the run goes on without it" in warnings[1]
    assert closed == ["FAILED"]  # tensorboard closed once, as failed; not again at the end
    assert "run written to" in out
    assert not (run_dir / "incomplete.json").exists()
    for name in ("report.json", "metrics.csv", "model.safetensors", "predictions.csv", "config.yaml"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "report.json").read_text())["timing"]["epochs_run"] == EPOCHS


def test_unknown_logger_is_a_one_line_error_before_any_work(tl: Tl, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, _, err = tl("train", "--data", tmp_path / "no-such-data", "--output", run_dir, *FAST,
                      "--set", "loggers=[tensorboard,mlfow]")  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: loggers: unknown logger 'mlfow'")
    assert "did you mean 'mlflow'?" in err and "known loggers: mlflow, tensorboard" in err
    assert not run_dir.exists()


@pytest.mark.parametrize(("logger", "module"), [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_missing_package_is_a_one_line_error_naming_the_extra(
    tl: Tl, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logger: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError, as if not installed
    run_dir = tmp_path / "run"
    code, _, err = tl("train", "--data", data, "--output", run_dir, *FAST, "--set", f"loggers=[{logger}]")
    assert code == 2
    assert err.count("\n") == 1
    assert err == (
        f"error: logger {logger!r} needs the 'tracking' extra ({module} is not installed): "
        'pip install "tlcore[tracking]"\n'
    )
    assert not run_dir.exists()  # refused before training started


def test_loggers_setting_is_a_list_in_train_help(capsys: pytest.CaptureFixture[str]) -> None:
    from tlcore.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "loggers" in text and "[mlflow,tensorboard]" in text
    assert "mlflow_tracking_uri" in text and "MLFLOW_TRACKING_URI" in text
    assert "mlflow_experiment" in text and "'tlcore'" in text


def test_tlcore_import_help_and_list_do_not_import_the_trackers() -> None:
    probe = (
        "import contextlib, io, sys, tlcore\n"
        "from tlcore.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    main(['list', 'loggers'])\n"
        "print(sorted(m for m in ('mlflow', 'tensorboard', 'torch.utils.tensorboard') if m in sys.modules))\n"
    )
    env = {**os.environ, "TLCORE_LOAD_PLUGINS": ""}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- the hook ---------------------------------------------------------------------------------------------------


class Recorder(RunLogger):
    """Records every call it gets."""

    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls

    def start(self, config: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        self.calls.append(("start", (dict(config), dict(meta))))

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.calls.append(("log_epoch", (epoch, dict(metrics))))

    def log_report(self, metrics: Mapping[str, float], report: Mapping[str, Any]) -> None:
        self.calls.append(("log_report", (dict(metrics), report)))

    def log_artifacts(self, run_dir: Path, files: Sequence[Path]) -> None:
        self.calls.append(("log_artifacts", (run_dir, list(files))))

    def close(self, status: RunStatus) -> None:
        self.calls.append(("close", status))


def recording_host(calls: list[tuple[str, Any]], contexts: list[LoggerContext]) -> PluginHost:
    """A host with the core's plugins and ``acme``, whose logger ``acme/recorder`` records its calls."""

    class Acme:
        @tlcore.hookimpl
        def register_loggers(self, register: Callable[[Logger], None]) -> None:
            def build(context: LoggerContext) -> RunLogger:
                contexts.append(context)
                return Recorder(calls)

            register(Logger(name="acme/recorder", description="records the calls", build=build))

    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(Acme(), name="acme")
    return host


#: Feature extraction on the tiny random model, reported to ``acme/recorder``.
RECORDED = {"backbone": "test_resnet", "weights": "none", "image_size": 32, "bootstrap": 0, "shift_check": False,
            "progress": False, "loggers": ["acme/recorder"]}  # fmt: skip


def test_register_loggers_plugin_logger_receives_a_feature_extraction_run_in_order(data: Path, tmp_path: Path) -> None:
    calls: list[tuple[str, Any]] = []
    contexts: list[LoggerContext] = []
    host = recording_host(calls, contexts)
    assert host.loggers.entry("acme/recorder").plugin == "acme" and "mlflow" in host.loggers
    overrides = {**RECORDED, "head": "linear", "head_epochs": 3}
    config = resolve_config(host.presets, "feature-extraction", overrides)
    run_dir = tmp_path / "run"
    report = run_training(host, config, str(data), run_dir, "feature-extraction")

    assert [c.run_dir for c in contexts] == [run_dir] and contexts[0].config["head_epochs"] == 3
    assert [name for name, _ in calls] == ["start", *["log_epoch"] * 3, "log_report", "log_artifacts", "close"]
    settings, meta = calls[0][1]
    assert settings == report["config"]
    assert meta["run_id"] == report["run_id"] and meta["run_dir"] == str(run_dir.resolve())
    assert (meta["preset"], meta["technique"], meta["task"], meta["resumed"]) == (
        "feature-extraction", "feature-extraction", "classification", False,
    )  # fmt: skip
    assert meta["classes"] == ["blue", "green", "red"]
    history = report["training"]["head_history"]
    assert [args[0] for name, args in calls if name == "log_epoch"] == [1, 2, 3]
    assert calls[3][1][1]["val_accuracy"] == pytest.approx(history[2]["val_accuracy"])
    metrics, logged_report = calls[4][1]
    assert logged_report == json.loads((run_dir / "report.json").read_text())
    assert metrics["test/accuracy"] == report["test"]["accuracy"]
    assert metrics["val/per_class/red/f1"] == report["val"]["per_class"]["red"]["f1"]
    assert "test/n" not in metrics and not any(key.startswith("val/confusion") for key in metrics)
    folder, files = calls[5][1]
    names = {f.relative_to(run_dir).as_posix() for f in files}
    assert folder == run_dir and {"report.json", "config.yaml", "model.safetensors", "model.json"} <= names
    assert "incomplete.json" not in names and all(f.is_file() for f in files)
    assert calls[6] == ("close", "FINISHED")


def test_register_loggers_fold_ensemble_is_tracked_as_one_run(data: Path, tmp_path: Path) -> None:
    calls: list[tuple[str, Any]] = []
    contexts: list[LoggerContext] = []
    host = recording_host(calls, contexts)
    config = resolve_config(host.presets, "feature-extraction", {**RECORDED, "folds": 2})
    run_dir = tmp_path / "cv"
    report = run_training(host, config, str(data), run_dir, "feature-extraction")

    assert report["folds"]["k"] == 2
    assert len(contexts) == 1  # the fold runs report to no logger
    assert [name for name, _ in calls] == ["start", "log_report", "log_artifacts", "close"]
    assert calls[0][1][1]["run_id"] == report["run_id"] and calls[0][1][0]["folds"] == 2
    assert calls[1][1][0]["test/accuracy"] == report["test"]["accuracy"]  # the ensemble's test score
    names = {f.relative_to(run_dir).as_posix() for f in calls[2][1][1]}
    assert {"report.json", "model.json", "config.yaml"} <= names
    assert not any(name.startswith("folds/") for name in names)
    assert calls[3] == ("close", "FINISHED")


def test_register_loggers_build_that_raises_fails_the_run_in_one_line(data: Path, tmp_path: Path) -> None:
    from tlcore.errors import PluginError

    class Broken:
        @tlcore.hookimpl
        def register_loggers(self, register: Callable[[Logger], None]) -> None:
            register(Logger(name="broken/tracker", description="raises", build=lambda context: 1 / 0))

    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(Broken(), name="broken")
    config = resolve_config(host.presets, "fine-tuning", {"loggers": ["broken/tracker"]})
    with pytest.raises(PluginError, match=r"logger 'broken/tracker' from plugin 'broken' failed: ZeroDivisionError"):
        run_training(host, config, str(data), tmp_path / "run", "fine-tuning")
    assert not (tmp_path / "run").exists()


# -- the tracker, without a run ---------------------------------------------------------------------------------


def test_tracker_switches_off_a_logger_that_raises_and_closes_failed_runs(tmp_path: Path) -> None:
    from tlcore.config import RunConfig

    good: list[tuple[str, Any]] = []
    bad: list[tuple[str, Any]] = []

    class Flaky(Recorder):
        def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
            super().log_epoch(epoch, metrics)
            raise ConnectionError("server went away\nsecond line")

    tracker = tracking.Tracker([("good", Recorder(good)), ("flaky", Flaky(bad))])
    (tmp_path / "config.yaml").write_text("run_id: abc\n")
    tracker.start(RunConfig(), tmp_path)
    with pytest.warns(TlcoreWarning) as caught:
        tracker.epoch({"epoch": 1, "train_loss": 0.5, "note": "text", "val_auc": None, "val_loss": float("nan")})
        tracker.epoch({"epoch": 2, "train_loss": 0.4})
    assert [str(w.message) for w in caught] == [
        "logger 'flaky' failed in log_epoch (ConnectionError: server went away); the run goes on without it, "
        "and its run directory is complete"
    ]
    assert [name for name, _ in bad] == ["start", "log_epoch", "close"] and bad[-1] == ("close", "FAILED")
    assert good[1] == ("log_epoch", (1, {"train_loss": 0.5})) and good[2] == ("log_epoch", (2, {"train_loss": 0.4}))
    assert tracker.names == ["good"]
    with pytest.raises(RuntimeError), tracker.closing():
        raise RuntimeError("training failed")
    assert good[-1] == ("close", "FAILED") and [name for name, _ in good].count("close") == 1
    tracker.close("FINISHED")  # closed already: nothing more
    assert [name for name, _ in good].count("close") == 1


# -- against the MLflow server (booted while the tests above ran) ---------------------------------------------


@pytest.fixture(scope="module")
def tracked(
    mlflow_server: str, data: Path, tl_module: Callable[..., int], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One run that reports to both loggers: MLflow through $MLFLOW_TRACKING_URI, TensorBoard into the run."""
    need("tensorboard")
    run_dir = tmp_path_factory.mktemp("tracked") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        code = tl_module(
            "train", "--data", data, "--output", run_dir, *FAST,
            "--set", "loggers=[mlflow,tensorboard]", "--set", "mlflow_experiment=tracked",
        )  # fmt: skip
    assert code == 0
    with (run_dir / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return {"run_dir": run_dir, "report": json.loads((run_dir / "report.json").read_text()), "rows": rows}


def test_mlflow_logger_run_is_read_back_from_the_server(
    tracked: dict[str, Any], mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    report, rows = tracked["report"], tracked["rows"]
    runs = mlflow.search_runs(experiment_names=["tracked"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "run"
    assert run.data.tags["tlcore.run_id"] == report["run_id"]
    assert run.data.tags["tlcore.technique"] == "fine-tuning"
    # Parameters: every setting of the run, as report.json records it (dicts as key.subkey, values as text).
    expected = {key: str(value) for key, value in tracking.flat_settings(report["config"]).items()}
    assert run.data.params == expected
    assert run.data.params["epochs"] == str(EPOCHS) and run.data.params["loggers"] == "['mlflow', 'tensorboard']"
    # Metrics per epoch, step = epoch, equal to metrics.csv.
    client = MlflowClient(mlflow_server)
    assert len(rows) == EPOCHS
    for column in ("train_loss", "val_loss", "val_accuracy", "lr_head"):
        history = sorted(client.get_metric_history(run.info.run_id, column), key=lambda m: m.step)
        assert [m.step for m in history] == list(range(1, EPOCHS + 1)), column
        assert [m.value for m in history] == pytest.approx([float(r[column]) for r in rows]), column
    # The final scores are report.json's.
    assert run.data.metrics["test/accuracy"] == pytest.approx(report["test"]["accuracy"])
    assert run.data.metrics["val/balanced_accuracy"] == pytest.approx(report["val"]["balanced_accuracy"])
    assert run.data.metrics["test/log_loss"] == pytest.approx(report["test"]["log_loss"])
    # Artifacts: the run's files (the model included), not its resume checkpoints.
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.json", "config.yaml", "metrics.csv", "model.safetensors", "model.json"} <= artifacts
    assert "learning_curves.png" in artifacts
    assert not artifacts & {"checkpoint_state.pt", "best.safetensors", "incomplete.json", "tensorboard"}
    copy = Path(client.download_artifacts(run.info.run_id, "report.json", str(tracked["run_dir"].parent)))
    assert json.loads(copy.read_text()) == report


def test_tensorboard_logger_event_files_hold_the_epochs_scores_and_plots(tracked: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    report, rows = tracked["report"], tracked["rows"]
    folder = tracked["run_dir"] / "tensorboard"
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    for column in ("train_loss", "val_loss", "val_accuracy", "lr_head"):
        scalars = events.Scalars(column)
        assert [s.step for s in scalars] == list(range(1, EPOCHS + 1)), column
        assert [s.value for s in scalars] == pytest.approx([float(r[column]) for r in rows], rel=1e-5), column
    final = events.Scalars("test/accuracy")
    assert [s.step for s in final] == [EPOCHS]
    assert final[0].value == pytest.approx(report["test"]["accuracy"], rel=1e-5)
    assert "plots/learning_curves" in tags["images"] and "plots/confusion_matrix" in tags["images"]
    image = events.Images("plots/learning_curves")[0]
    assert image.width > 100 and image.height > 100
    assert {"config/text_summary", "status/text_summary"} <= set(tags["tensors"])
    assert _text(events, "status") == "FINISHED"
    # The event files are part of the run: --overwrite may replace the folder, nothing is foreign.
    from tlcore.run_dirs import foreign_files

    assert foreign_files(tracked["run_dir"]) == []


def _text(events: Any, tag: str) -> str:
    import numpy as np
    from tensorboard.util import tensor_util

    value = tensor_util.make_ndarray(events.Tensors(f"{tag}/text_summary")[-1].tensor_proto)
    return str(np.asarray(value).reshape(-1)[0].decode())


def test_interrupted_run_ends_its_mlflow_run_as_killed(
    mlflow_server: str, data: Path, tl: Tl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    with ctrl_c_after_epoch(2):  # Ctrl-C in epoch 2, once it is checkpointed (before it is logged)
        code, _, _ = tl(
            "train", "--data", data, "--output", tmp_path / "run", *FAST,
            "--set", "loggers=[mlflow]", "--set", "mlflow_experiment=interrupted",
        )  # fmt: skip
    assert code == 130
    [run] = mlflow.search_runs(experiment_names=["interrupted"], output_format="list")
    assert run.info.status == "KILLED"
    history = MlflowClient(mlflow_server).get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1]  # epoch 1 was logged before the interruption
    assert run.data.params["epochs"] == str(EPOCHS)
