"""docs/quickstart.ipynb runs from top to bottom, in a Jupyter kernel of this virtual environment.

The notebook reads its image folder from ``TLCORE_QUICKSTART_DATA``; here that is a tiny generated colour data
set. A cell injected after the notebook's ``parameters`` cell (as papermill does) makes the runs small: a
random-initialised tiny backbone at 32 px, and the fine-tuning section switched on with one epoch. About
30 seconds on 2 busy cores, most of it the kernel's imports, the two trainings and the ONNX export.
Under CI (``CI=true``) a missing nbclient fails the test instead of skipping it.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import write_image_folder

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "quickstart.ipynb"
CLASSES = ["blue", "green", "red"]
#: Replaces the notebook's SETTINGS and FINE_TUNE: a tiny model, one fine-tuning epoch.
INJECTED = """\
SETTINGS = {"backbone": "test_resnet", "weights": "none", "image_size": 32, "batch_size": 16, "bootstrap": 0,
            "epochs": 1, "head_epochs": 5}
FINE_TUNE = True
import sys
print("kernel python:", sys.executable)
"""
#: Appended: what the notebook left in the kernel, for the assertions below.
FACTS = """\
import json
json.dump({"run": str(run.dir), "tuned": str(tuned.dir), "index": [str(i) for i in predictions.index],
           "columns": list(predictions.columns), "true": list(predictions["true"]),
           "val_n": val_scores["n"], "exported": exported["output"], "format": exported["format"]},
          open("facts.json", "w"))
"""


def _require(name: str) -> ModuleType:
    """The module; skipped where it is missing, except under CI, where that is a failure."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return importlib.import_module(name)
    return pytest.importorskip(name)


nbformat = _require("nbformat")
nbclient = _require("nbclient")
_require("ipykernel")


def _venv_kernel(kernels: Path) -> Any:
    """A kernel manager whose only kernelspec starts ``python -m ipykernel_launcher`` with this interpreter,
    so the notebook runs in this virtual environment whatever kernels the machine has installed."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = kernels / "tlcore-venv"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "tlcore venv", "language": "python"}))
    return KernelManager(kernel_name="tlcore-venv", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))


def _text(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_the_committed_notebook_has_no_outputs_and_stable_cell_ids() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    ids = [cell.id for cell in nb.cells]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[a-z]+(-[a-z]+)*", i) for i in ids), ids
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"cell {cell.id} has outputs"
    parameters = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and "TLCORE_QUICKSTART_DATA" in parameters[0].source


def test_the_quickstart_notebook_runs_on_a_small_image_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_image_folder(tmp_path / "colours", {"train": 4, "val": 2, "test": 2})
    work = tmp_path / "work"
    work.mkdir()
    # The kernel inherits this environment (and the session's isolated cache from conftest).
    monkeypatch.setenv("TLCORE_QUICKSTART_DATA", str(data))
    monkeypatch.setenv("TLCORE_LOAD_PLUGINS", "")  # core plugins only: installed ones cannot change the run
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one torch thread, as the suite's own tests use
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell(INJECTED, id="injected-parameters")
    nb.cells.insert(at + 1, injected)
    nb.cells.append(nbformat.v4.new_code_cell(FACTS, id="test-facts"))

    client = nbclient.NotebookClient(
        nb, km=_venv_kernel(tmp_path / "kernels"), timeout=180, resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # a cell that raises fails the test with its traceback (CellExecutionError)

    cells = {c.id: c for c in nb.cells}
    assert f"kernel python: {sys.executable}\n" in _text(cells["injected-parameters"])
    facts = json.loads((work / "facts.json").read_text())

    run = Path(facts["run"])
    assert run.parent == work / "runs" and run.name.startswith("feature-extraction-")
    report = json.loads((run / "report.json").read_text())
    assert report["technique"] == "feature-extraction" and report["data"]["classes"] == CLASSES
    assert report["config"]["backbone"] == "test_resnet"  # the injected settings reached the run
    assert report["test"]["n"] == 6

    pngs = sorted(p.name for p in run.glob("*.png"))
    shown = [o for o in cells["plots"].outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert "confusion_matrix.png" in pngs and len(shown) == len(pngs)
    assert any("text/html" in o.get("data", {}) for o in cells["scores"].outputs)

    assert facts["columns"] == ["true", "label", *CLASSES]
    assert facts["true"] == CLASSES  # the first test image of each class, one row each
    assert [Path(i).parent.name for i in facts["index"]] == CLASSES
    assert all(Path(i).parent.parent == data / "test" for i in facts["index"])
    assert any("text/html" in o.get("data", {}) for o in cells["predict"].outputs)

    assert facts["val_n"] == 6 and (run / "evaluation-val.json").is_file()
    assert facts["format"] == "onnx" and Path(facts["exported"]) == run / "model.onnx"
    assert (run / "model.onnx").stat().st_size > 0

    tuned = Path(facts["tuned"])
    assert tuned.parent == work / "runs" and (tuned / "report.json").is_file()
    epochs = (tuned / "metrics.csv").read_text().splitlines()
    assert epochs[0].startswith("epoch,") and len(epochs) == 2  # the header and the one epoch
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in cells["finetune"].outputs)
