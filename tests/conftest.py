"""Shared fixtures: tiny generated image datasets, an isolated cache, and a fresh plugin host for CLI tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 35),
    "green": (35, 190, 50),
    "blue": (40, 50, 210),
}
SIZE = 48
#: Overrides that keep every real training run small and quiet.
FAST = ["--set", "image_size=64", "--set", "batch_size=16", "--set", "progress=false"]


def colour_image(rgb: tuple[int, int, int], rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """A ``size``x``size`` image whose dominant colour is ``rgb``, with noise and a darker random blob."""
    base = np.asarray(rgb, dtype=np.float32)[None, None, :]
    pixels = base + rng.normal(0.0, 22.0, (size, size, 3))
    y, x = rng.integers(0, size // 2, 2)
    pixels[y : y + size // 3, x : x + size // 3] *= 0.6
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_image_folder(
    root: Path,
    counts: dict[str, int],
    classes: dict[str, tuple[int, int, int]] = COLOURS,
    seed: int = 0,
) -> Path:
    """``root/<split>/<class>/<i>.png``; a split named ``""`` writes flat ``root/<class>/`` folders."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for name, rgb in classes.items():
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                colour_image(rgb, rng).save(folder / f"{name}_{i:02d}.png")
    return root


@pytest.fixture(scope="session", autouse=True)
def isolated_tlcore_env(tlcore_isolated_env: Path) -> Path:
    """One cache per test session (features, converted weights), never ~/.cache; no network attempts."""
    return tlcore_isolated_env


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from threads, and on a small shared machine OpenMP threads that
    wait for a busy core make every op slow (10-30x here); one thread keeps the suite fast."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """A 3-class colour dataset: ``train`` 8, ``val`` 3, ``test`` 3 images per class, 48x48 PNGs."""
    return write_image_folder(tmp_path / "colours", {"train": 8, "val": 3, "test": 3})


@pytest.fixture(scope="session")
def make_folder() -> Callable[..., Path]:
    """The :func:`write_image_folder` helper, for tests that need their own layout."""
    return write_image_folder


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    """A smaller colour dataset for fine-tuning runs: ``train`` 4, ``val`` 2, ``test`` 2 per class."""
    return write_image_folder(tmp_path / "small", {"train": 4, "val": 2, "test": 2}, seed=1)


@pytest.fixture(scope="session")
def fast() -> list[str]:
    """``--set`` arguments that keep a real training run small and quiet."""
    return list(FAST)


@pytest.fixture
def fresh_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A new process-wide plugin host before and after the test, with only the core's default plugins.

    Entry-point plugins are switched off (``TLCORE_LOAD_PLUGINS=""``) so that plugins installed in
    the environment, broken ones included, cannot change what the core CLI prints.
    """
    from tlcore.plugins import reset_host

    monkeypatch.setenv("TLCORE_LOAD_PLUGINS", "")
    monkeypatch.delenv("TLCORE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("TLCORE_DEBUG", raising=False)
    reset_host(None)
    yield
    reset_host(None)


@pytest.fixture
def tl(
    fresh_host: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., tuple[int, str, str]]:
    """Run ``tl`` in-process, like a new process each call: returns (exit code, stdout, stderr).

    The working directory is the test's tmp_path, so default outputs (``runs/...``) land there.
    """
    from tlcore.cli import main
    from tlcore.plugins import reset_host

    monkeypatch.chdir(tmp_path)

    def run(*argv: str | os.PathLike[str]) -> tuple[int, str, str]:
        reset_host(None)  # each call sees a new host, as a new process would
        capsys.readouterr()  # drop anything printed before
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="module")
def tl_module(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., int]:
    """Run ``tl`` in-process from module-scoped fixtures (fresh host, core plugins only); returns the exit code."""
    from tlcore.cli import main
    from tlcore.plugins import reset_host

    cwd = tmp_path_factory.mktemp("cwd")

    def run(*argv: str | os.PathLike[str]) -> int:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(cwd)
            mp.setenv("TLCORE_LOAD_PLUGINS", "")
            mp.delenv("TLCORE_DISABLE_PLUGINS", raising=False)
            reset_host(None)
            try:
                return main([str(a) for a in argv])
            finally:
                reset_host(None)

    return run


def run_pip(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pip ARGS`` with this interpreter, quietly, without asking or checking versions."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def pip_editable() -> Iterator[Callable[[Path, str], None]]:
    """``install(project, dist)``: pip-install a plugin folder editable into this interpreter (no deps, no
    build isolation, no index); every distribution installed is uninstalled after the test."""
    installed: list[str] = []

    def install(project: Path, dist: str) -> None:
        installed.append(dist)
        result = run_pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(project))
        assert result.returncode == 0, f"pip install -e {project} failed:\n{result.stdout}\n{result.stderr}"

    try:
        yield install
    finally:
        if installed:
            run_pip("uninstall", "-y", *installed)


@pytest.fixture
def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """The environment for ``tl``/``pytest`` subprocesses: every installed plugin, caches under tmp_path,
    one torch thread (the machine is small and shared)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TLCORE_DISABLE_PLUGINS", "TLCORE_LOAD_PLUGINS")}
    env.update(
        TLCORE_CACHE=str(tmp_path / "tlcore-cache"),
        TLCORE_DATA=str(tmp_path / "tlcore-data"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@contextlib.contextmanager
def ctrl_c_after_epoch(epoch: int = 1) -> Iterator[None]:
    """Inside the block, a fine-tuning run stops as Ctrl-C stops it, right after epoch ``epoch`` is checkpointed."""
    from tlcore.training import finetune

    real = finetune._checkpoint
    saved = 0

    def checkpoint_then_stop(*args: Any) -> None:
        nonlocal saved
        real(*args)
        saved += 1
        if saved == epoch:
            raise KeyboardInterrupt

    finetune._checkpoint = checkpoint_then_stop  # type: ignore[assignment]
    try:
        yield
    finally:
        finetune._checkpoint = real  # type: ignore[assignment]


def same_settings_report(value: Any) -> Any:
    """A report without what differs between two runs of the same settings: ids, clocks, the machine."""
    if isinstance(value, dict):
        skip = {"run_id", "created", "timing", "environment", "seconds"}
        return {k: same_settings_report(v) for k, v in value.items() if k not in skip}
    if isinstance(value, list):
        return [same_settings_report(v) for v in value]
    return value
