"""Experiment tracking: the run loggers that a run's ``loggers`` setting names (``mlflow``, ``tensorboard``, a
plugin's), built before any data is loaded and called as the run goes.

A logger never costs a run: one that raises is switched off with one warning (its ``close("FAILED")`` is still
tried), and training goes on; the run directory is complete either way.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tlcore import run_dirs
from tlcore.config import RunConfig
from tlcore.errors import ConfigError, PluginError
from tlcore.plugins import PluginHost, guarded
from tlcore.runtime import warn
from tlcore.specs import LoggerContext, RunLogger, RunStatus

#: Run files that are not logged: the marker, and the resume state and weight copies kept for resuming and
#: choosing the best epoch (each as large as the model, which is logged).
NOT_LOGGED = frozenset({run_dirs.MARKER, run_dirs.CHECKPOINT_STATE, "checkpoint.safetensors", "best.safetensors"})
#: Folders of a run directory that are not logged: TensorBoard's event files and an ensemble's fold runs.
NOT_LOGGED_DIRS = frozenset({run_dirs.TENSORBOARD, run_dirs.FOLDS})
#: Report sections whose scalars are the run's final metrics, logged as ``<section>/<metric>``.
REPORT_SECTIONS = ("val", "test")


def open_tracker(host: PluginHost, config: RunConfig, run_dir: Path) -> Tracker:
    """The run loggers ``config.loggers`` names, built. An unknown name, or a logger that cannot work (a package
    that is not installed), is a one-line error here, before any data is loaded or any file written."""
    names = list(dict.fromkeys(config.loggers))  # a name given twice logs once
    if not names:
        return Tracker([])
    registry = host.loggers
    for name in names:
        if name not in registry:
            known = registry.names()
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"loggers: unknown logger {name!r}",
                f"{hint}known loggers: {', '.join(known) or 'none'} (tl list loggers)",
            )
    context = LoggerContext(config=config.model_dump(), run_dir=run_dir)
    built: list[tuple[str, RunLogger]] = []
    for name in names:
        entry = registry.entry(name)
        logger = guarded(f"logger {name!r}", entry.plugin, entry.item.build)(context)
        if not isinstance(logger, RunLogger):
            raise PluginError(
                f"logger {name!r} from plugin {entry.plugin!r} built a {type(logger).__name__}, not a RunLogger",
                "fix or update the plugin, or leave the logger out of loggers",
            )
        built.append((name, logger))
    return Tracker(built)


class Tracker:
    """The run loggers of one run, each called in turn; one that raises is switched off with one warning."""

    def __init__(self, loggers: list[tuple[str, RunLogger]]) -> None:
        self._loggers = dict(loggers)
        self._started = False
        self._closed = False

    @property
    def names(self) -> list[str]:
        """The loggers still in use."""
        return list(self._loggers)

    def start(self, config: RunConfig, run_dir: Path, resumed: bool = False) -> None:
        """The run began (its directory and config.yaml exist): every logger's ``start``."""
        self._started = True
        if self._loggers:
            self._each("start", config.model_dump(), run_meta(config, run_dir, resumed))

    def epoch(self, row: Mapping[str, Any]) -> None:
        """One row of ``metrics.csv`` (or of a head's history): its numbers, at step ``row["epoch"]``."""
        if self._loggers:
            self._each("log_epoch", int(row["epoch"]), epoch_metrics(row))

    def finish(self, run_dir: Path, report: Mapping[str, Any]) -> None:
        """The run directory is complete: the final scores, the run's files, then ``close("FINISHED")``. Loggers
        get report.json's content as written (plain JSON values)."""
        if self._loggers:
            path = run_dir / run_dirs.REPORT
            report = json.loads(path.read_text()) if path.is_file() else report
            self._each("log_report", report_metrics(report), report)
            self._each("log_artifacts", run_dir, run_files(run_dir))
        self.close("FINISHED")

    def close(self, status: RunStatus) -> None:
        """Every logger's ``close(status)``, once, and only after ``start``."""
        if not self._started or self._closed:
            return
        self._closed = True
        self._each("close", status)
        self._loggers.clear()

    def ensemble(self, run_folds: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        """``run_folds`` (tlcore.training.folds) that tracks the ensemble as one run once it is written: its
        settings, final scores and files. The fold runs are not tracked on their own."""

        def call(host: PluginHost, config: RunConfig, data: str, run_dir: Path, *args: Any, **kwargs: Any) -> Any:
            report = run_folds(host, config, data, run_dir, *args, **kwargs)
            self.start(config, run_dir, resumed=bool(kwargs.get("resume")))
            self.finish(run_dir, report)
            return report

        return call

    @contextlib.contextmanager
    def closing(self) -> Iterator[Tracker]:
        """Inside the block, an error closes the loggers as ``FAILED`` and Ctrl-C as ``KILLED``, then propagates."""
        try:
            yield self
        except KeyboardInterrupt:
            self.close("KILLED")
            raise
        except BaseException:
            self.close("FAILED")
            raise

    def _each(self, method: str, *args: Any) -> None:
        for name, logger in list(self._loggers.items()):
            try:
                getattr(logger, method)(*args)
            except Exception as exc:
                del self._loggers[name]
                warn(
                    f"logger {name!r} failed in {method} ({_short(exc)}); the run goes on without it, "
                    "and its run directory is complete"
                )
                if method != "close":
                    with contextlib.suppress(Exception):
                        logger.close("FAILED")


def run_meta(config: RunConfig, run_dir: Path, resumed: bool) -> dict[str, Any]:
    """Who the run is, from its config.yaml: ``run_id``, ``run_dir`` (absolute), ``preset``, ``data``, ``adapter``,
    ``technique``, ``task``, ``classes``, ``started``, ``resumed`` and ``tlcore_version``."""
    import tlcore

    saved = run_dirs.read_run_settings(run_dir)
    meta = {key: saved.get(key) for key in ("run_id", "preset", "data", "adapter")}
    meta.update(run_dir=str(run_dir.resolve()), technique=config.technique)
    meta.update({key: saved.get(key) for key in ("task", "classes", "started")})
    meta.update(resumed=resumed, tlcore_version=tlcore.__version__)
    return meta


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of one history row, by column name; ``epoch`` itself is the step, not a metric."""
    return {key: float(value) for key, value in row.items() if key != "epoch" and _finite(value)}


def report_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """report.json's val and test scalars, nested ones included: ``test/accuracy``, ``val/per_class/cat/f1``.
    Sample counts (``n``) and lists (the confusion matrix) are left out."""
    out: dict[str, float] = {}

    def walk(prefix: str, section: Mapping[str, Any]) -> None:
        for key, value in section.items():
            if isinstance(value, Mapping):
                walk(f"{prefix}/{key}", value)
            elif key != "n" and _finite(value):
                out[f"{prefix}/{key}"] = float(value)

    for name in REPORT_SECTIONS:
        section = report.get(name)
        if isinstance(section, Mapping):
            walk(name, section)
    return out


def run_files(run_dir: Path) -> list[Path]:
    """The files a logger receives: every file of the run directory but :data:`NOT_LOGGED`,
    :data:`NOT_LOGGED_DIRS` and temporary files, sorted."""
    files = []
    for path in sorted(run_dir.rglob("*")):
        parts = path.relative_to(run_dir).parts
        if not path.is_file() or path.is_symlink() or parts[0] in NOT_LOGGED_DIRS:
            continue
        if (len(parts) == 1 and parts[0] in NOT_LOGGED) or any(part.startswith(".") for part in parts):
            continue
        files.append(path)
    return files


def flat_settings(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Settings with dict values flattened to ``key.subkey`` (an empty dict stays, as ``{}``)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_settings(value, f"{name}."))
        else:
            out[name] = value
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
