"""What several ``tl`` commands share: the plugin host, its failure warnings, the run-directory argument,
the status spinner, a run configuration from a preset and ``--set`` overrides, and the library's warnings
printed as ``warning:`` lines."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tlcore.errors import TlcoreWarning


def host() -> Any:
    """The plugin host (built on first use, so ``tl --help`` loads no plugin)."""
    from tlcore.plugins import get_host

    return get_host()


def warn_failed_plugins(host: Any) -> None:
    for info in host.failures():
        print(f"warning: plugin {info.name!r} failed and was skipped: {info.error}", file=sys.stderr)


def run_dir(path: str) -> Path:
    """A ``RUN_DIR`` argument; one line when it does not exist."""
    from tlcore.run_dirs import existing_run_dir

    return existing_run_dir(Path(path))


def status(message: str) -> Any:
    """A spinner with ``message`` on the console while the block runs."""
    from tlcore.runtime import console

    return console.status(message)


def config(host: Any, preset: str | None, overrides: Sequence[str], base: dict[str, Any] | None = None) -> Any:
    """The run configuration: ``base``, then the preset's settings, then ``--set`` overrides."""
    from tlcore.config import parse_overrides, resolve_config

    return resolve_config(host.presets, preset, parse_overrides(overrides), base)


@contextlib.contextmanager
def warnings_printed() -> Iterator[None]:
    """While a command runs, each TlcoreWarning the library issues is printed as one ``warning: MESSAGE``
    line, every time; other warnings go where they went before."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", TlcoreWarning)
        previous = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if not issubclass(category, TlcoreWarning):
                previous(message, category, *args, **kwargs)
                return
            # The run's console: a line printed while a progress bar is live lands above the bar.
            from rich.markup import escape

            from tlcore.runtime import console

            console.print(f"[yellow]warning: {escape(str(message))}", soft_wrap=True)

        warnings.showwarning = show
        yield
