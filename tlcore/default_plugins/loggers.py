"""The core's experiment trackers: ``mlflow`` and ``tensorboard`` (``--set loggers=[mlflow,tensorboard]``).

Both packages come with the ``tracking`` extra (``pip install "tlcore[tracking]"``) and are imported only by a
run that names the logger, so ``import tlcore``, ``tl --help`` and ``tl list`` never load them (nor torch).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tlcore import hookimpl, run_dirs
from tlcore.extras import require
from tlcore.specs import Logger, LoggerContext, RunLogger, RunStatus

#: MLflow keeps a parameter value up to this many characters.
MLFLOW_PARAM_CHARS = 6000
#: Largest batches one MLflow request takes (its REST API's limits: 100 params, 1000 metrics).
MLFLOW_PARAMS_PER_BATCH = 100
MLFLOW_METRICS_PER_BATCH = 1000


# -- mlflow ------------------------------------------------------------------------------------------------------


def metric_name(name: str) -> str:
    """A metric or parameter name MLflow accepts (letters, digits, ``_ - . / :`` and spaces; class names may hold
    anything else)."""
    return re.sub(r"[^\w\-./: ]", "_", name)


class MlflowRunLogger(RunLogger):
    """One MLflow run: parameters = the settings, metrics per epoch (step = epoch) and the final scores, artifacts
    = the run directory's files. Talks to the tracking server through ``MlflowClient``, so it never touches
    MLflow's active-run state in the user's process."""

    def __init__(self, tracking_uri: str | None, experiment: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client: Any = None
        self.run_id: str | None = None
        self.last_step = 0

    def start(self, config: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        from tlcore.training.tracking import flat_settings

        client = MlflowClient(tracking_uri=self.tracking_uri)
        experiment_id = _experiment_id(client, self.experiment)
        tags = {f"tlcore.{key}": _text(value) for key, value in meta.items()}
        run = client.create_run(experiment_id, run_name=Path(str(meta.get("run_dir", "run"))).name, tags=tags)
        self.client, self.run_id = client, run.info.run_id
        params = [Param(metric_name(k), _text(v)) for k, v in flat_settings(config).items()]
        for i in range(0, len(params), MLFLOW_PARAMS_PER_BATCH):
            client.log_batch(self.run_id, params=params[i : i + MLFLOW_PARAMS_PER_BATCH])

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.last_step = epoch
        self._metrics(metrics, epoch)

    def log_report(self, metrics: Mapping[str, float], report: Mapping[str, Any]) -> None:
        self._metrics(metrics, self.last_step)

    def log_artifacts(self, run_dir: Path, files: Sequence[Path]) -> None:
        for path in files:
            folder = path.parent.relative_to(run_dir).as_posix()
            self.client.log_artifact(self.run_id, str(path), artifact_path=None if folder == "." else folder)

    def close(self, status: RunStatus) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)
            self.run_id = None

    def _metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        rows = [Metric(metric_name(k), v, stamp, step) for k, v in metrics.items()]
        for i in range(0, len(rows), MLFLOW_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=rows[i : i + MLFLOW_METRICS_PER_BATCH])


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:  # another run created it meanwhile
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MLFLOW_PARAM_CHARS else text[: MLFLOW_PARAM_CHARS - 3] + "..."


def build_mlflow(context: LoggerContext) -> RunLogger:
    require("mlflow", "tracking", "logger 'mlflow'")
    config = context.config
    return MlflowRunLogger(config.get("mlflow_tracking_uri"), str(config.get("mlflow_experiment") or "tlcore"))


# -- tensorboard -------------------------------------------------------------------------------------------------


class TensorBoardRunLogger(RunLogger):
    """Event files in ``RUN/tensorboard/``: the settings as text and hyperparameters, scalars per epoch, the final
    scores at the last epoch, and the run's PNG plots as images."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.writer: Any = None
        self.last_step = 0
        self.settings: dict[str, Any] = {}

    def start(self, config: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        import yaml
        from torch.utils.tensorboard import SummaryWriter

        from tlcore.training.tracking import flat_settings

        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.settings = flat_settings(config)
        self.writer.add_text("run", _markdown(yaml.safe_dump(dict(meta), sort_keys=False)))
        self.writer.add_text("config", _markdown(yaml.safe_dump(dict(config), sort_keys=False)))

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.last_step = epoch
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, epoch)

    def log_report(self, metrics: Mapping[str, float], report: Mapping[str, Any]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, self.last_step)
        # The HParams tab: the settings next to the final scores, to compare runs side by side.
        from torch.utils.tensorboard.summary import hparams

        hparam_values = {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in self.settings.items()}
        for event in hparams(hparam_values, {k: v for k, v in metrics.items() if k.count("/") == 1}):
            self.writer.file_writer.add_summary(event)

    def log_artifacts(self, run_dir: Path, files: Sequence[Path]) -> None:
        import numpy as np
        from PIL import Image

        for path in files:
            if path.suffix.lower() != ".png":
                continue
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            tag = f"plots/{path.relative_to(run_dir).with_suffix('').as_posix()}"
            self.writer.add_image(tag, pixels, self.last_step, dataformats="HWC")

    def close(self, status: RunStatus) -> None:
        if self.writer is not None:
            self.writer.add_text("status", status, self.last_step)
            self.writer.close()
            self.writer = None


def _markdown(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())  # indented: TensorBoard shows it as code


def build_tensorboard(context: LoggerContext) -> RunLogger:
    require("tensorboard", "tracking", "logger 'tensorboard'")
    return TensorBoardRunLogger(context.run_dir / run_dirs.TENSORBOARD)


@hookimpl
def register_loggers(register: Callable[[Logger], None]) -> None:
    register(
        Logger(
            name="mlflow",
            description="MLflow: settings as parameters, metrics per epoch and the final scores, the run's files "
            "(model included) as artifacts; server from mlflow_tracking_uri or $MLFLOW_TRACKING_URI",
            build=build_mlflow,
        )
    )
    register(
        Logger(
            name="tensorboard",
            description="TensorBoard event files in RUN/tensorboard: scalars per epoch, the final scores, the "
            "plots as images, the settings as hyperparameters",
            build=build_tensorboard,
        )
    )
