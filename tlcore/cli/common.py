"""What several ``tl`` commands share: the plugin host, its failure warnings, the run-directory argument,
the status spinner, and a run configuration from a preset and ``--set`` overrides."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tlcore.errors import TlcoreError


def host() -> Any:
    """The plugin host (built on first use, so ``tl --help`` loads no plugin)."""
    from tlcore.plugins import get_host

    return get_host()


def warn_failed_plugins(host: Any) -> None:
    for info in host.failures():
        print(f"warning: plugin {info.name!r} failed and was skipped: {info.error}", file=sys.stderr)


def run_dir(path: str) -> Path:
    """A ``RUN_DIR`` argument; one line when it does not exist."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise TlcoreError(f"run directory {run_dir} does not exist", "pass the --output of `tl train`")
    return run_dir


def status(message: str) -> Any:
    """A spinner with ``message`` on the console while the block runs."""
    from tlcore.runtime import console

    return console.status(message)


def config(host: Any, preset: str | None, overrides: Sequence[str], base: dict[str, Any] | None = None) -> Any:
    """The run configuration: ``base``, then the preset's settings, then ``--set`` overrides."""
    from tlcore.config import build_config, parse_overrides, preset_settings

    settings = dict(base or {})
    if preset:
        settings.update(preset_settings(host.presets, preset))
    return build_config(settings, parse_overrides(overrides), f"preset {preset}" if preset else "config")
