"""Opening a finished run directory, with one-line errors when it is not one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tlcore.errors import TlcoreError
from tlcore.run_dirs import require_finished

REPORT = "report.json"


def load_report(run_dir: Path) -> dict[str, Any]:
    """``run_dir/report.json``; a :class:`TlcoreError` that says what to pass instead when it is missing."""
    if not run_dir.exists():
        raise TlcoreError(f"run directory {run_dir} does not exist", "pass the --output of `tl train`")
    if not run_dir.is_dir():
        raise TlcoreError(f"{run_dir} is not a directory", "pass the --output of `tl train`, not a file in it")
    require_finished(run_dir)  # an interrupted run's report.json may be its old run's
    path = run_dir / REPORT
    if not path.is_file():
        raise TlcoreError(f"{run_dir} has no {REPORT}: not a finished run", "pass the --output of a finished tl train")
    try:
        report = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TlcoreError(f"{path} is not valid JSON: {exc}", "train the run again") from None
    if not isinstance(report, dict):
        raise TlcoreError(f"{path} is not a tlcore report", "train the run again")
    return report


def task_and_classes(report: dict[str, Any]) -> tuple[str, list[str]]:
    data = report.get("data") or {}
    return str(data.get("task", "classification")), [str(c) for c in data.get("classes") or []]
