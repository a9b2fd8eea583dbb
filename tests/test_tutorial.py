"""docs/plugins/tutorial.md works as written: its files are written and its commands run, in order.

The convention (documented at the top of the tutorial): a code block with ``file=PATH`` in its info string is
written to PATH; a ``bash`` block is run line by line; other blocks are output and are not run. Commands run in
an empty tmp_path with this virtual environment first on PATH (so ``tl``, ``pip`` and ``python`` are the
venv's); ``pip install`` gets ``--no-deps --no-build-isolation --no-index`` so it works offline. Everything the
tutorial installs is uninstalled afterwards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "plugins" / "tutorial.md"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(?P<lang>[\w-]*)(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
OFFLINE_PIP = "pip install --no-deps --no-build-isolation --no-index"


@dataclass
class Step:
    kind: str  # "file" or "command"
    text: str
    path: str | None = None


def tutorial_steps(markdown: str) -> list[Step]:
    steps: list[Step] = []
    for fence in FENCE.finditer(markdown):
        target = re.search(r"\bfile=(\S+)", fence["info"])
        if target:
            steps.append(Step("file", fence["body"], target[1]))
        elif fence["lang"] == "bash":
            for command in re.sub(r"\\\n\s*", " ", fence["body"]).splitlines():
                if command.strip() and not command.lstrip().startswith("#"):
                    steps.append(Step("command", command.strip()))
    return steps


def test_tutorial_steps_are_found() -> None:
    steps = tutorial_steps(TUTORIAL.read_text(encoding="utf-8"))
    files = [s.path for s in steps if s.kind == "file"]
    commands = [s.text for s in steps if s.kind == "command"]
    assert files == ["make_toy_derm.py", "tlcore-derm/tlcore_derm/__init__.py", "tlcore-derm/tests/test_plugin.py"]
    assert commands[0] == "tl plugin new derm"
    assert "pip install -e ./tlcore-derm" in commands
    assert "tl plugins" in commands
    assert any(c.startswith("tl train --preset derm/dermoscopy") and "epochs=1" in c for c in commands)
    assert any(c.startswith("python -m pytest tlcore-derm/tests") for c in commands)
    for switch in ("TLCORE_DISABLE_PLUGINS=derm", "TLCORE_LOAD_PLUGINS=derm", "TLCORE_LOAD_PLUGINS= "):
        assert any(c.startswith(switch) for c in commands), switch
    text = TUTORIAL.read_text(encoding="utf-8")
    for topic in ("## When a plugin breaks", "--debug", "TLCORE_DEBUG"):
        assert topic in text


def _uninstall_projects(folder: Path) -> None:
    names = []
    for pyproject in folder.glob("*/pyproject.toml"):
        found = re.search(r'^name = "([^"]+)"', pyproject.read_text(), flags=re.M)
        if found:
            names.append(found[1])
    if names:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", *names], capture_output=True, text=True, timeout=300
        )


def test_tutorial_runs_end_to_end(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    started = time.perf_counter()
    work = tmp_path / "work"
    work.mkdir()
    env = {**subprocess_env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "120"}
    outputs: dict[str, str] = {}
    try:
        for step in tutorial_steps(TUTORIAL.read_text(encoding="utf-8")):
            if step.kind == "file":
                assert step.path is not None
                target = (work / step.path).resolve()
                assert target.is_relative_to(work.resolve()), f"file={step.path} leaves the work folder"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(step.text, encoding="utf-8")
                continue
            command = re.sub(r"^pip install\b", OFFLINE_PIP, step.text)
            result = subprocess.run(command, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, f"$ {command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"
            outputs[step.text] = result.stdout
    finally:
        _uninstall_projects(work)

    plugins = outputs["tl plugins"]
    assert "derm" in plugins and "failed" not in plugins
    presets = outputs["tl list presets derm"]
    assert "derm/dermoscopy" in presets
    report = json.loads((work / "runs" / "derm" / "report.json").read_text())
    assert report["preset"] == "derm/dermoscopy"
    assert report["data"]["adapter"] == "derm/ham10000"
    assert report["config"]["augmentation"] == "derm/dermoscopy"
    assert sum(report["data"]["counts"].values()) == 75
    pytest_output = next(out for cmd, out in outputs.items() if cmd.startswith("python -m pytest"))
    assert "2 passed" in pytest_output
    disabled = next(out for cmd, out in outputs.items() if cmd.startswith("TLCORE_DISABLE_PLUGINS=derm"))
    assert "derm/" not in disabled and "fine-tuning" in disabled
    only = next(out for cmd, out in outputs.items() if cmd.startswith("TLCORE_LOAD_PLUGINS=derm"))
    statuses = {p["name"]: p["status"] for p in json.loads(only)}
    assert statuses["derm"] == "loaded"
    assert {status for name, status in statuses.items() if name != "derm"} <= {"disabled"}
    print(f"tutorial: {len(outputs)} commands in {time.perf_counter() - started:.1f} s")


@pytest.mark.parametrize("name", ["hooks.md", "tutorial.md"])
def test_readme_links_the_plugin_docs(name: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"docs/plugins/{name}" in readme
    assert (ROOT / "docs" / "plugins" / name).is_file()
