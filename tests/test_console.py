"""The console that progress bars draw on: plain text in a notebook without ipywidgets."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
import rich.console

from tlcore.runtime import make_console


def test_a_notebook_without_ipywidgets_gets_plain_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rich.console, "_is_jupyter", lambda: True)
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "ipywidgets" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert not make_console().is_jupyter


def test_a_notebook_with_ipywidgets_keeps_live_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rich.console, "_is_jupyter", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object())
    assert make_console().is_jupyter


def test_a_terminal_is_not_a_notebook() -> None:
    assert not make_console().is_jupyter
