"""The ``tta-off`` lever of the preset suite without retraining: each saved preset model re-scored on val
without its mirrored test-time view.

Mirrored views (``tta``) change scoring only. With ``checkpoint: last`` and no early stopping (every preset
the suite judges), the per-epoch val scores that use them choose nothing, so a run with ``tta=false`` and
the same seed trains the same weights; re-scoring the saved model is that run, minus the noise of a
second training. For each untouched preset run of ``benchmarks/presets.py`` whose run directory is still
on disk and whose model averages mirrored views, this script

1. scores val again *with* the mirrored view and checks it reproduces the run's own val scores (the
   JSON records the largest difference; a run that does not reproduce is reported and skipped);
2. scores val without it and writes ``DATASET__PRESET+tta-off[+cvK]__sN.json`` beside the suite's JSON,
   val only (a lever trial), with ``derived_from`` naming the source run.

A cross-validated run (``+cvK``) is re-scored member by member on the fold each member never saw, so its
``tta-off`` score is out of fold like the source's.

    python benchmarks/tta_off.py                 # every eligible run; existing results are kept
    python benchmarks/tta_off.py --dataset ultrasound_breast_busbra
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from presets import RESULTS, WORK, Job, _git, _machine, _scores

from tlcore.config import RunConfig
from tlcore.data.prepare import prepare_data
from tlcore.models.objective import Objective, target_array
from tlcore.models.transfer import load_meta
from tlcore.plugins import get_host
from tlcore.predict import Predictor, run_config

VARIANT = "tta-off"
TOLERANCE = 1e-6  # re-scoring with the mirrored view must give the run's own val scores


def sources(results: Path, dataset: str | None) -> list[dict[str, Any]]:
    """Untouched preset runs (no settings, or only ``folds=K``) whose run directory is still on disk."""
    out = []
    for path in sorted(results.glob("*.json")):
        row = json.loads(path.read_text())
        sets = row.get("sets", [])
        if row["preset"] in ("plain", "feature-extraction") or any(not s.startswith("folds=") for s in sets):
            continue
        if dataset and row["dataset"] != dataset:
            continue
        run_dir = Path(row.get("run_dir", ""))
        if (run_dir / "report.json").is_file():
            out.append(row)
    return out


def arm_of(row: dict[str, Any]) -> str:
    """PRESET+tta-off, or PRESET+tta-off+cvK for a cross-validated source."""
    cv = [s.split("=")[1] for s in row.get("sets", []) if s.startswith("folds=")]
    return f"{row['preset']}+{VARIANT}" + (f"+cv{cv[0]}" if cv else "")


def val_paths(run_dir: Path) -> list[str]:
    """The val images a run scored, in its predictions.csv order."""
    with (run_dir / "predictions.csv").open() as fh:
        return [r["path"] for r in csv.DictReader(fh) if r["split"] == "val"]


def score(predictor: Predictor, paths: list[str], reader: Any, tta: bool) -> np.ndarray:
    predictor.meta = replace(predictor.meta, tta=tta)
    return predictor.predict(paths, reader)


def rescore(row: dict[str, Any]) -> dict[str, Any] | None:
    host = get_host()
    run_dir = Path(row["run_dir"])
    meta = load_meta(run_dir)
    members = [run_dir / m for m in meta.members] if meta.members else [run_dir]
    if not all(load_meta(m).tta for m in members):
        print(f"skip {run_dir.name}: its model has no mirrored view to leave out")
        return None
    config = RunConfig(**{**run_config(run_dir).model_dump(), "folds": 0})
    report = json.loads((run_dir / "report.json").read_text())
    prepared = prepare_data(host, report["data"]["source"], config)
    ds = prepared.dataset
    by_path = {r.path: r for split in ("train", "val") for r in ds.splits[split]}
    t0 = time.perf_counter()
    records, with_tta, without = [], [], []
    for member in members:
        paths = val_paths(member)
        predictor = Predictor.load(host, member)
        with_tta.append(score(predictor, paths, ds.reader, True))
        without.append(score(predictor, paths, ds.reader, False))
        records += [by_path[p] for p in paths]
    objective = Objective.from_meta(meta)
    y = target_array(ds.task, records, len(ds.classes))
    again = objective.metrics(y, np.concatenate(with_tta))
    diff = max(abs(float(again[m]) - float(row["val"][m])) for m in ("accuracy", "balanced_accuracy", "auc"))
    if diff > TOLERANCE:
        print(f"skip {run_dir.name}: re-scoring with the mirrored view gives val scores {diff:.2g} away from the run's")
        return None
    off = objective.metrics(y, np.concatenate(without))
    return {
        "modality": row["modality"],
        "dataset": row["dataset"],
        "arm": arm_of(row),
        "preset": row["preset"],
        "sets": ["tta=false", *row.get("sets", [])],
        "seed": row["seed"],
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "tlcore_git": _git(),
        "machine": _machine(),
        "command": f"benchmarks/tta_off.py ({run_dir.name}'s saved models re-scored on val, no mirrored view)",
        "derived_from": {"run": run_dir.name, "tlcore_git": row.get("tlcore_git"), "reproduced_max_abs_diff": diff},
        "rescore_s": time.perf_counter() - t0,
        "wall_s": row["wall_s"],  # the training it stands for: the source run's
        "val": _scores(off),
        "config": {**row.get("config", {}), "tta": False},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--dataset")
    args = p.parse_args()
    os.environ.setdefault("TLCORE_CACHE", str(WORK / "cache"))  # the suite's decoded images
    for row in sources(args.results, args.dataset):
        out = args.results / f"{Job(row['modality'], row['dataset'], arm_of(row), row['seed']).key}.json"
        if out.exists():
            print(f"done  {out.name}")
            continue
        result = rescore(row)
        if result is None:
            continue
        out.write_text(json.dumps(result, indent=1) + "\n")
        v0, v1 = row["val"]["balanced_accuracy"], result["val"]["balanced_accuracy"]
        print(f"wrote {out.name}: val balanced accuracy {v0:.3f} with the mirrored view, {v1:.3f} without")


if __name__ == "__main__":
    main()
