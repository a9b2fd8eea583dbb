"""Run directories: which files a run is made of, how an unfinished one is marked, and when a folder may
receive a new run.

A run directory never holds the files of two runs. A new run goes into a new or empty folder, or, with
``--overwrite``, into one whose old run files are removed first; a folder that holds files no tlcore
command writes is never emptied. From its first file to its last, a run directory carries the marker
:data:`MARKER`: the commands that read a run (``tl evaluate``, ``report``, ``export``, ``predict``, ...)
refuse an unfinished one in one line, and ``tl train --resume`` continues it.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from tlcore import io_atomic
from tlcore.errors import StorageError, TlcoreError

#: Written first and removed last by ``tl train``: while it exists, the run has not finished.
MARKER = "incomplete.json"
RUN_CONFIG = "config.yaml"
REPORT = "report.json"
CHECKPOINT_STATE = "checkpoint_state.pt"
#: Every file a run directory receives: ``tl train``, then ``tl evaluate``, ``stress``, ``report``, ``export``.
RUN_FILES = frozenset(
    {
        MARKER, RUN_CONFIG, REPORT, CHECKPOINT_STATE, "metrics.csv", "predictions.csv", "model.safetensors",
        "model.json", "best.safetensors", "checkpoint.safetensors", "head.skops", "report.html", "train_images.sha256",
        "model.onnx", "model.onnx.json", "model.pt", "model.pt.json", "learning_curves.png",
        "confusion_matrix.png", "roc.png", "precision_recall.png", "calibration.png", "predicted_vs_true.png",
    }
)  # fmt: skip
#: ... and these patterns; ``.*.tmp*`` are the temporary files of a write that was interrupted.
RUN_PATTERNS = ("evaluation-*.json", "stress-*.json", "stress-*.png", ".*.tmp", ".*.tmp.png")
#: ``tl explain``'s default folder inside a run: Grad-CAM PNGs only.
EXPLANATIONS = "explanations"
#: ``tl train --folds K``: the fold runs of an ensemble, ``folds/fold-1`` ... ``folds/fold-K``.
FOLDS = "folds"
#: ``--set loggers=[tensorboard]``: the run's TensorBoard event files.
TENSORBOARD = "tensorboard"
#: The name every TensorBoard event file starts with.
EVENT_FILE_PREFIX = "events.out.tfevents."


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def existing_run_dir(run_dir: Path) -> Path:
    """``run_dir`` when it is a folder; one line when it does not exist."""
    if not run_dir.is_dir():
        raise TlcoreError(f"run directory {run_dir} does not exist", "pass the --output of `tl train`")
    return run_dir


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a tlcore run, finished or not (known by its files, whatever its name)."""
    if (path / MARKER).is_file():
        return True
    return (path / RUN_CONFIG).is_file() and any(
        (path / name).is_file() for name in (REPORT, "model.json", CHECKPOINT_STATE, "metrics.csv")
    )


def is_unfinished(path: Path) -> bool:
    return (path / MARKER).is_file()


def read_run_settings(run_dir: Path) -> dict[str, Any]:
    """``run_dir/config.yaml`` as written by ``tl train`` (preset, data, adapter, config), or ``{}`` without one."""
    import yaml

    path = run_dir / RUN_CONFIG
    if not path.is_file():
        return {}
    try:
        saved = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TlcoreError(f"{path} is not valid YAML: {exc}".splitlines()[0], "train the run again") from None
    return saved if isinstance(saved, dict) else {}


def run_adapter(run_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """The adapter that loaded a run's training data, and its options (a config.yaml that does not name
    the adapter falls back to report.json's data section, then to the adapter setting)."""
    saved = read_run_settings(run_dir)
    config = saved.get("config") or {}
    adapter = saved.get("adapter")
    if not adapter and (run_dir / REPORT).exists():
        adapter = (json.loads((run_dir / REPORT).read_text()).get("data") or {}).get("adapter")
    if not adapter and config.get("adapter") not in (None, "auto"):
        adapter = config["adapter"]
    return adapter, dict(config.get("adapter_options") or {})


def _marker(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / MARKER).read_text())
    except (OSError, ValueError):
        return {}  # a damaged marker still says "unfinished"
    return data if isinstance(data, dict) else {}


def _is_run_file(entry: Path) -> bool:
    if entry.is_symlink():
        return False  # a link is the user's: removing it would not remove what it points at anyway
    if entry.is_dir():
        if entry.name == FOLDS:  # only fold runs (and folds not started yet) inside
            return all(p.is_dir() and (is_run_dir(p) or not any(p.iterdir())) for p in entry.iterdir())
        if entry.name == TENSORBOARD:  # event files only
            return all(p.is_dir() or p.name.startswith(EVENT_FILE_PREFIX) for p in entry.rglob("*"))
        return entry.name == EXPLANATIONS and all(p.is_file() and p.suffix == ".png" for p in entry.iterdir())
    return entry.name in RUN_FILES or any(fnmatch.fnmatchcase(entry.name, p) for p in RUN_PATTERNS)


def foreign_files(run_dir: Path) -> list[str]:
    """Names in ``run_dir`` that no tlcore command writes: a user's own files, never removed."""
    return sorted(entry.name for entry in run_dir.iterdir() if not _is_run_file(entry))


def check_new_run(run_dir: Path, overwrite: bool) -> None:
    """Refuse, before anything is written, an output folder that holds something: a run (unless
    ``overwrite``), or files that are not a run's (always)."""
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return  # new or empty (a file in the way is reported when the folder is created)
    if not (is_run_dir(run_dir) or (run_dir / RUN_CONFIG).is_file() or (run_dir / REPORT).is_file()):
        raise TlcoreError(
            f"output folder {run_dir} is not empty and holds no tlcore run",
            "choose a new or empty folder for --output",
        )
    if not overwrite:
        if is_unfinished(run_dir):
            raise TlcoreError(
                f"{run_dir} already holds an unfinished run",
                f"tl train --resume {run_dir} continues it, --overwrite replaces it, or choose another --output",
            )
        raise TlcoreError(
            f"{run_dir} already holds a finished run", "pass --overwrite to replace it, or choose another --output"
        )
    foreign = foreign_files(run_dir)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise TlcoreError(
            f"--overwrite: {run_dir} also holds files tlcore did not write ({shown}); nothing was removed",
            "move them out of the folder, or choose another --output",
        )


def check_outside_data(run_dir: Path, data_root: Path) -> None:
    """Refuse an output folder inside a data folder: the next run on that data would read it as a class."""
    if not data_root.is_dir():
        return  # a CSV manifest names its images: a folder beside it is never read
    out, root = run_dir.resolve(), data_root.resolve()
    if out == root or root in out.parents:
        raise TlcoreError(
            f"--output {run_dir} is inside the data folder {data_root}",
            "write runs outside the data, e.g. --output runs/NAME",
        )


def begin(run_dir: Path, run_id: str, replace: bool) -> None:
    """Mark ``run_dir`` unfinished (the marker is its first file), then, when ``replace``, remove the old
    run's files. An interruption at any point leaves a marked folder, never an unmarked mix."""
    io_atomic.ensure_dir(run_dir)
    note = "tl train has not finished this run; tl train --resume continues it, --overwrite replaces it"
    io_atomic.write_text(run_dir / MARKER, json.dumps({"run_id": run_id, "note": note}, indent=2))
    if replace:
        _remove_run_files(run_dir)


def _remove_run_files(run_dir: Path) -> None:
    for entry in sorted(run_dir.iterdir()):
        if entry.name == MARKER or not _is_run_file(entry):
            continue
        try:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StorageError(
                f"could not remove {entry} of the run being replaced: {reason}",
                "remove the folder yourself, or choose another --output",
            ) from None


def finish(run_dir: Path) -> None:
    """The last step of a run: from here on it is finished."""
    try:
        (run_dir / MARKER).unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(f"could not mark {run_dir} finished: {exc.strerror}", "check the folder") from None


def require_finished(run_dir: Path) -> None:
    """A one-line error when ``run_dir`` holds a run that has not finished (interrupted, or still training)."""
    if not is_unfinished(run_dir):
        return
    if (run_dir / CHECKPOINT_STATE).is_file():
        hint = f"continue it with tl train --resume {run_dir}"
    else:
        hint = f"train it again with tl train --resume {run_dir}, or with --overwrite"
    raise TlcoreError(f"{run_dir} holds an unfinished run: training was interrupted or is still going", hint)


def check_resume(run_dir: Path, saved: dict[str, Any], technique: str, epochs: int) -> str:
    """Refuse, before anything is written, a ``--resume`` that cannot continue this run; returns its run id."""
    run_id = str(saved.get("run_id") or "") or new_run_id()  # runs written before run ids get one now
    if is_unfinished(run_dir):
        marked = _marker(run_dir).get("run_id")
        if marked and saved.get("run_id") != marked:
            raise TlcoreError(
                f"{run_dir} was interrupted while a new run replaced an old one: nothing to resume",
                "train it again with --overwrite",
            )
        return run_id
    if not (run_dir / REPORT).is_file():
        return run_id  # a run from before the marker, interrupted: --resume was always meant for it
    done = _epochs_run(run_dir)
    if technique != "fine-tuning" or epochs <= done:
        more = f"--set epochs=N above {done} trains it further; " if technique == "fine-tuning" else ""
        raise TlcoreError(
            f"{run_dir} is a finished run: nothing to resume", f"{more}--overwrite trains it again from the start"
        )
    return run_id


def _epochs_run(run_dir: Path) -> int:
    try:
        report = json.loads((run_dir / REPORT).read_text())
        return int((report.get("timing") or {}).get("epochs_run") or 0)
    except (OSError, ValueError, AttributeError, TypeError):
        return 0


#: Settings that shape the model or its training state: a resumed run must keep them.
STRUCTURE = ("technique", "backbone", "head", "head_params")


def check_same_settings(run_dir: Path, saved: dict[str, Any], config: dict[str, Any]) -> None:
    """Refuse, before anything is written, a ``--resume`` whose settings build another model than the
    run's (``saved`` is its config.yaml)."""
    old = saved.get("config") or {}
    for key in STRUCTURE:
        if key in old and old[key] != config.get(key):
            raise TlcoreError(
                f"cannot resume {run_dir} with {key}={config.get(key)!r}: the run was trained with {key}={old[key]!r}",
                f"drop --set {key}=..., or train a new run into another --output",
            )


def check_same_data(run_dir: Path, saved: dict[str, Any], task: str, classes: list[str], in_chans: int) -> None:
    """Refuse, before anything is written, a ``--resume`` on data with another task, class list or channel
    count than the run's (runs from before config.yaml recorded them fall back to model.json)."""
    recorded = _recorded_data(run_dir, saved)
    hint = "resume with the run's own data (drop --data), or train a new run into another --output"
    if recorded.get("task") not in (None, task):
        raise TlcoreError(f"cannot resume {run_dir}: the data is a {task} dataset, the run is {recorded['task']}", hint)
    old_classes = recorded.get("classes")
    if old_classes is not None and list(old_classes) != list(classes):
        raise TlcoreError(
            f"cannot resume {run_dir}: the data has {_names(classes)}, the run was trained on {_names(old_classes)}",
            hint,
        )
    if recorded.get("in_chans") not in (None, in_chans):
        raise TlcoreError(
            f"cannot resume {run_dir}: the data has {in_chans} channel(s), the run was trained on "
            f"{recorded['in_chans']}",
            hint,
        )


def _recorded_data(run_dir: Path, saved: dict[str, Any]) -> dict[str, Any]:
    if "classes" in saved:
        return saved
    try:
        return dict(json.loads((run_dir / "model.json").read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def _names(classes: list[str]) -> str:
    shown = ", ".join(str(c) for c in classes[:6]) + (", ..." if len(classes) > 6 else "")
    return f"{len(classes)} classes ({shown})"
