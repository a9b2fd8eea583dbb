"""Cross-dataset preset suite: every preset on every development set of its modality, against two baselines.

For each (data set, arm, seed) it trains once and writes one JSON to ``--results`` (default
``docs/bench/presets/``). A run whose JSON exists is skipped, and an interrupted ``tl train`` run continues
from its last finished epoch (``tl train --resume``; each epoch has its own seed, so it ends where an
uninterrupted run ends), so the suite can run across several sittings; ``--plan`` lists what is left. The
commit recorded is that of the tlcore code (``-dirty`` only when tlcore or a plugin differs from it).
The arms on a data set are:

* every preset of the data set's modality (``tl train --preset P``, untouched unless ``--set`` is given,
  in which case the arm is named ``P+VARIANT``, its runs are kept apart, and their JSON holds val scores
  only: a lever on trial is chosen on val, and test is read once per adopted preset version);
* ``feature-extraction``: the core frozen-feature preset (``tl train --preset feature-extraction``);
* ``plain``: the fine-tuning loop a user writes without tlcore, in this process: ``timm.create_model`` with
  the same backbone and ImageNet weights as the presets (``tf_efficientnet_lite0``), full fine-tuning with
  AdamW (lr 3e-4, weight decay 0.05), a per-step cosine schedule, cross-entropy, torchvision's standard
  augmentation (RandomResizedCrop + horizontal flip; Resize + CenterCrop to evaluate), batch 32, the epoch
  count of the data set's reference preset (the one a user of that modality would pick), last epoch kept.
  Its one setting is ``--set folds=K``: grouped K-fold cross-validation on the folds ``tl train --folds K``
  draws (same groups, same seed), scored out of fold like the presets' ``+cvK`` runs.

Every arm sees the same train/val/test files (tlcore's adapter and split). Scores come from the run's own
``report.json`` (presets) or from ``tlcore.metrics`` on the loop's softmax outputs (plain): accuracy,
balanced accuracy, macro-F1 and AUC on val and test. Wall clock is the whole ``tl train`` process (or the
loop from model creation to the test scores); the runs share one tlcore cache folder, so a later run may
find converted weights, decoded images or features already there (``report_timing`` says which). The load
average at start and end is recorded: a run that shared the cores is slower, not less accurate.

    python benchmarks/presets.py --plan                       # what is done and what is left
    python benchmarks/presets.py --modality medical           # run what is left, medical sets first
    python benchmarks/presets.py --dataset beans --arm plain --seeds 0 1
    python benchmarks/presets.py --arm medical/breast-ultrasound --set image_size=288 --variant s288
    python benchmarks/presets.py --dataset ct_lung_iqothnccd --arm plain --set folds=3 --variant cv3
    python benchmarks/presets.py --dataset ct_lung_iqothnccd --arm medical/skin-lesion --set ema=0.998 \
        --set folds=3 --variant ema+cv3                       # a lever, scored out of fold
    python benchmarks/presets.py --table                      # markdown table, protocol check, plot
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Development sets by modality, each with its reference preset (the plain loop's epoch budget).
# Order within a modality: smallest first, so a sitting finishes whole data sets early.
SUITE: dict[str, dict[str, str]] = {
    "medical": {
        "ct_lung_iqothnccd": "medical/brain-tumor-mri",  # cross-sectional grey slices: the MRI preset
        "ultrasound_breast_busbra": "medical/breast-ultrasound",
        "chest_xray_pneumonia": "medical/chest-xray",
    },
    "agriculture": {
        "chilli_leaf_field": "agriculture/leaf-disease",
        "beans": "agriculture/leaf-disease",
        "plantvillage_potato": "agriculture/plantvillage",
    },
}
# Presets judged on each modality's sets. agriculture/aerial-yield is a band regression preset: no set here.
PRESETS: dict[str, list[str]] = {
    "medical": ["medical/chest-xray", "medical/breast-ultrasound", "medical/brain-tumor-mri", "medical/skin-lesion"],
    "agriculture": ["agriculture/leaf-disease", "agriculture/plantvillage"],
}
# Sets whose val split tlcore warns is too small to choose on (tlcore.data.val_size): CT's 17 benign val
# slices come from 3 scans. There an arm's score in the modality mean is its out-of-fold score over
# train+val, from the run named ARM+VARIANT on the grouped manifest (benchmarks/grouped_manifest.py).
OUT_OF_FOLD: dict[str, str] = {"ct_lung_iqothnccd": "cv3"}
BASELINES = ("feature-extraction", "plain")
SCORE = "balanced_accuracy"  # the protocol's val score (docs/results.md)
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auc", "n")
RESULTS = ROOT / "docs" / "bench" / "presets"
WORK = ROOT / ".bench" / "presets"


@dataclass(frozen=True)
class Job:
    modality: str
    dataset: str
    arm: str  # a preset name, a baseline, or PRESET+VARIANT
    seed: int
    sets: tuple[str, ...] = ()

    @property
    def preset(self) -> str:
        return self.arm.split("+", 1)[0]

    @property
    def key(self) -> str:
        return f"{self.dataset}__{self.arm.replace('/', '-')}__s{self.seed}"


def plan(modalities: list[str], datasets: list[str] | None, arms: list[str] | None, seeds: list[int],
         sets: list[str], variant: str | None) -> list[Job]:  # fmt: skip
    """Every job the filters select, in running order: data set by data set, baselines first."""
    jobs = []
    for seed in seeds:
        for modality in modalities:
            for dataset in SUITE[modality]:
                if datasets and dataset not in datasets:
                    continue
                for arm in [*BASELINES, *PRESETS[modality]]:
                    if arms and arm not in arms:
                        continue
                    if variant:
                        if arm == "plain" and plain_folds(sets) is None:
                            continue  # the plain loop has no settings but folds
                        jobs.append(Job(modality, dataset, f"{arm}+{variant}", seed, tuple(sets)))
                    else:
                        jobs.append(Job(modality, dataset, arm, seed))
    return jobs


def _git() -> str | None:
    """The commit of the tlcore code that ran, ``-dirty`` when tlcore or a plugin differs from it
    (the harness in benchmarks/ may be newer: it chooses and times runs, it does not train them)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "tlcore", "plugins"], cwd=ROOT,
                               check=False).returncode  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def _machine() -> dict[str, Any]:
    import timm
    import torch

    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def _scores(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {m: metrics.get(m) for m in METRICS}
    out["recall"] = {c: v["recall"] for c, v in metrics.get("per_class", {}).items()}
    return out


# -- a preset or the feature-extraction baseline: tl train in a subprocess ------------------------


def run_preset(job: Job, data: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    run_dir = work / "runs" / job.key
    # An interrupted attempt that wrote its config continues where it stopped (tl train --resume: each epoch
    # has its own seed, so it ends as an uninterrupted run would); one that did not starts from nothing.
    resumed = (run_dir / "config.yaml").is_file()
    if run_dir.exists() and not resumed:
        import shutil

        shutil.rmtree(run_dir)
    tl = Path(sys.executable).parent / "tl"
    cmd = [str(tl), "train", "--preset", job.preset, "--data", str(data), "--output", str(run_dir), "--quiet",
           "--set", f"seed={job.seed}"]  # fmt: skip
    for pair in job.sets:
        cmd += ["--set", pair]
    log = work / "logs" / f"{job.key}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("a" if resumed else "w") as out:
        out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {'resumed' if resumed else 'started'}\n")
        out.flush()
        # A resumed run takes its settings from its own config.yaml, so only the directory is passed.
        run = [str(tl), "train", "--resume", str(run_dir), "--quiet"] if resumed else cmd
        rc = subprocess.run(run, stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"{shlex.join(run)} exited {rc}; log: {log}\n{log.read_text(errors='replace')[-1500:]}")
    report = json.loads((run_dir / "report.json").read_text())
    timing = report.get("timing") or {}
    return {
        "command": shlex.join(["tl", *cmd[1:]]),
        # A resumed run's own clock (its epochs before the interruption, and this attempt) stands in for
        # the wall clock, which the interruption split.
        "wall_s": float(timing.get("total_s") or wall) if resumed else wall,
        "resumed": resumed,
        "val": _scores(report["val"]),
        "test": _scores(report["test"]),
        "report_timing": report.get("timing"),
        "config": {
            k: report["config"].get(k)
            for k in ("backbone", "image_size", "epochs", "batch_size", "augmentation", "strategy", "head", "tta")
        },
        "run_dir": str(run_dir),
    }


# -- the plain timm + PyTorch loop, in this process -------------------------------------------------


def plain_folds(sets: tuple[str, ...] | list[str]) -> int | None:
    """K when ``sets`` is exactly ``folds=K`` (the one setting the plain loop has: grouped K-fold
    cross-validation on the same folds as ``tl train --folds K``), 0 for no settings, None otherwise."""
    if not sets:
        return 0
    if len(sets) == 1 and sets[0].startswith("folds=") and sets[0][6:].isdigit():
        return int(sets[0][6:])
    return None


def run_plain(job: Job, data: Path) -> dict[str, Any]:
    import torch
    from plain_baseline import PathDataset, plain_model, plain_transforms, train_epoch
    from time_to_accuracy import resolve_config
    from timm.data.config import resolve_data_config
    from torch.utils.data import DataLoader

    from tlcore.data.prepare import prepare_data
    from tlcore.metrics.classification import classification_metrics
    from tlcore.runtime import autocast, pick_device, resolve_workers
    from tlcore.specs import Record
    from tlcore.training.folds import assign_folds

    reference = SUITE[job.modality][job.dataset]
    host, config = resolve_config(reference, [f"seed={job.seed}"])
    prepared = prepare_data(host, str(data), config)
    splits, classes = prepared.dataset.splits, prepared.dataset.classes
    device = pick_device(config.device)
    workers = resolve_workers(None, device)
    bs, epochs = 32, config.epochs
    t0 = time.perf_counter()

    def fit(train: list[Record], label: str) -> Any:
        random.seed(job.seed)
        np.random.seed(job.seed)
        torch.manual_seed(job.seed)
        model, timm_name, _ = plain_model(host, config, len(classes))
        model.to(device)
        data_cfg = resolve_data_config({}, model=model)
        size = int(data_cfg["input_size"][-1])
        train_tf, eval_tf = plain_transforms(size, data_cfg["mean"], data_cfg["std"])
        train_loader = DataLoader(
            PathDataset(train, train_tf), batch_size=bs, shuffle=True, num_workers=workers,
            drop_last=len(train) % bs == 1, generator=torch.Generator().manual_seed(job.seed),
        )  # fmt: skip
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(train_loader))
        for epoch in range(epochs):
            e0 = time.perf_counter()
            train_epoch(model, train_loader, optimizer, scheduler, device)
            print(f"  plain{label}: epoch {epoch + 1}/{epochs} in {time.perf_counter() - e0:.0f} s", flush=True)
        return model, eval_tf, timm_name, size

    @torch.inference_mode()
    def probabilities(model: Any, eval_tf: Any, records: list[Record]) -> tuple[np.ndarray, np.ndarray]:
        model.eval()
        loader = DataLoader(PathDataset(records, eval_tf), batch_size=bs * 2, num_workers=workers)
        probs, targets = [], []
        for x, y in loader:
            with autocast(device):
                probs.append(torch.softmax(model(x.to(device)).float(), 1).cpu())
            targets.append(y)
        return torch.cat(targets).numpy(), torch.cat(probs).numpy()

    def scores(targets: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
        return _scores(classification_metrics(targets, probs, classes))

    k = plain_folds(job.sets)
    side: dict[str, Any] = {}
    if k:
        # Out of fold, as tl train --folds K scores val: every train+val image by the model that never saw its
        # group, pooled; the same grouped folds (tlcore.training.folds.assign_folds, same seed).
        records = splits["train"] + splits["val"]
        fold = assign_folds(records, k, "classification", job.seed)
        oof_y, oof_p, per_fold = [], [], []
        for i in range(k):
            train = [r for r, f in zip(records, fold, strict=True) if f != i]
            held = [r for r, f in zip(records, fold, strict=True) if f == i]
            model, eval_tf, timm_name, size = fit(train, f" fold {i + 1}/{k}")
            y, p = probabilities(model, eval_tf, held)
            oof_y.append(y)
            oof_p.append(p)
            per_fold.append({"fold": i + 1, "train": len(train), "val": len(held), "val_metrics": scores(y, p)})
        side["val"] = scores(np.concatenate(oof_y), np.concatenate(oof_p))
        side["folds"] = {"k": k, "per_fold": per_fold, "val_is": "out of fold over train+val (grouped), pooled"}
    else:
        model, eval_tf, timm_name, size = fit(splits["train"], "")
        side["val"] = scores(*probabilities(model, eval_tf, splits["val"]))
        side["test"] = scores(*probabilities(model, eval_tf, splits["test"]))
    return {
        "command": "benchmarks/presets.py plain loop (module docstring): timm + AdamW 3e-4/0.05, cosine, CE, "
        "RandomResizedCrop + flip, full fine-tuning",
        "wall_s": time.perf_counter() - t0,
        **side,
        "config": {
            "backbone": timm_name,
            "image_size": size,
            "epochs": epochs,
            "batch_size": bs,
            "reference_preset": reference,
            "device": str(device),
            **({"folds": k} if k else {}),
        },
    }


# -- running ---------------------------------------------------------------------------------------


def run_job(job: Job, datasets_root: Path, results: Path, work: Path) -> dict[str, Any]:
    data = datasets_root / job.dataset
    env = {**os.environ, "TLCORE_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1"}
    os.environ["TLCORE_CACHE"] = env["TLCORE_CACHE"]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = os.getloadavg()
    side = run_plain(job, data) if job.preset == "plain" else run_preset(job, data, work, env)
    if job.sets:  # a lever on trial is judged on val alone: test is read once per adopted preset version
        side.pop("test", None)
    result = {
        "modality": job.modality,
        "dataset": job.dataset,
        "arm": job.arm,
        "preset": job.preset,
        "sets": list(job.sets),
        "seed": job.seed,
        "started": started,
        "tlcore_git": _git(),
        "machine": _machine(),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        **side,
    }
    results.mkdir(parents=True, exist_ok=True)
    tmp = results / f".{job.key}.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(results / f"{job.key}.json")
    return result


# -- the table, the protocol check and the plot ----------------------------------------------------


def load_results(results: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(data set, arm) -> seed-averaged val and test scores and wall clock."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        grouped.setdefault((r["dataset"], r["arm"]), []).append(r)
    out = {}
    for key, runs in grouped.items():
        cell: dict[str, Any] = {"seeds": sorted(r["seed"] for r in runs), "modality": runs[0]["modality"]}
        for split in ("val", "test"):
            for m in ("accuracy", "balanced_accuracy", "auc"):
                vals = [r[split][m] for r in runs if split in r and r[split].get(m) is not None]
                cell[f"{split}_{m}"] = _mean(vals)
        # Per seed, so a lever is compared with its control on the seeds both ran.
        cell["val_by_seed"] = {
            r["seed"]: {**{m: r.get("val", {}).get(m) for m in (SCORE, "auc")}, "commit": r.get("tlcore_git")}
            for r in runs
        }
        cell["wall_s"] = _mean([r["wall_s"] for r in runs])
        cell["commits"] = sorted({str(r.get("tlcore_git")) for r in runs})
        # Cross-validated (folds=K): val is out of fold over train+val, not the val split the baselines scored.
        cell["out_of_fold"] = any(s.startswith("folds=") and s != "folds=0" for r in runs for s in r.get("sets", []))
        out[key] = cell
    return out


def _f(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _minutes(s: float | None) -> str:
    return "-" if s is None else f"{s / 60:.1f}"


def table(results: Path) -> str:
    cells = summarise(load_results(results))
    lines = []
    for modality, sets in SUITE.items():
        arms = [*BASELINES, *PRESETS[modality]]
        arms += sorted({a for (_, a) in cells if "+" in a and a.split("+")[0] in [*BASELINES, *PRESETS[modality]]})
        lines += [f"\n**{modality}** (val / test; balanced accuracy, accuracy, AUC; minutes; seeds)\n",
                  "| data set | arm | val bal. acc. | val acc. | val AUC | test bal. acc. | test acc. | test AUC "
                  "| min | seeds | beats both baselines on val |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]  # fmt: skip
        for dataset in sets:
            base = [cells.get((dataset, b), {}).get(f"val_{SCORE}") for b in BASELINES]
            for arm in arms:
                c = cells.get((dataset, arm))
                if c is None:
                    continue
                verdict = ""
                if arm.split("+")[0] not in BASELINES:
                    # Out of fold, a preset is compared with the baselines cross-validated on the same folds.
                    against = base
                    if c["out_of_fold"]:  # ARM+cvK or ARM+LEVER+cvK: the baselines' +cvK runs
                        cv = arm.rsplit("+", 1)[1]
                        against = [cells.get((dataset, f"{b}+{cv}"), {}).get(f"val_{SCORE}") for b in BASELINES]
                    v = c[f"val_{SCORE}"]
                    verdict = "not all baselines run" if None in against else ("yes" if all(
                        v > b for b in against) else "**no**")  # fmt: skip
                    if c["out_of_fold"]:
                        verdict += " (out of fold, against the baselines on the same folds)"
                lines.append(
                    f"| {dataset} | {arm} | {_f(c['val_balanced_accuracy'])} | {_f(c['val_accuracy'])} | "
                    f"{_f(c['val_auc'])} | {_f(c['test_balanced_accuracy'])} | {_f(c['test_accuracy'])} | "
                    f"{_f(c['test_auc'])} | {_minutes(c['wall_s'])} | {','.join(map(str, c['seeds']))} | {verdict} |"
                )
        scored_oof = [f"{d} out of fold (`+{OUT_OF_FOLD[d]}`)" for d in sets if d in OUT_OF_FOLD]
        lines.append(
            "\nMean val balanced accuracy over the modality's sets (only arms run on every set"
            + (f"; {', '.join(scored_oof)}" if scored_oof else "") + "):\n"
        )
        means = []
        for arm in arms:
            if any(arm.endswith(f"+{cv}") for cv in OUT_OF_FOLD.values()):
                continue  # counted in its arm's mean, for the set it stands in for
            keys = [(d, f"{arm}+{OUT_OF_FOLD[d]}" if d in OUT_OF_FOLD else arm) for d in sets]
            vals = [cells[k][f"val_{SCORE}"] for k in keys if k in cells]
            if len(vals) == len(sets):
                means.append(f"- {arm}: {_mean(vals):.3f}")
        lines += means or [f"- none yet: no arm has run on all {len(sets)} sets"]
        lines += lever_gains(cells, sets)
    return "\n".join(lines)


def _seed_mean(by_seed: dict[int, dict[str, Any]], seeds: list[int], metric: str) -> float | None:
    vals = [by_seed[s][metric] for s in seeds]
    return None if None in vals else _mean([v for v in vals if v is not None])


def lever_gains(cells: dict[tuple[str, str], dict[str, Any]], sets: dict[str, str]) -> list[str]:
    """Each lever trial's val gain over its preset: over ``P+ctl`` (the untouched preset re-run) when that ran
    at one of the lever's commits, else over the untouched row ``P`` (out of fold: ``P+cvK``); on the seeds both
    ran, in the protocol's score and in AUC (which moves less when a few images change side). A seed that the
    lever and ``P+ctl`` ran at different commits is named, since a change of code alone can move one split's
    score (the untouched row is an older commit by design)."""
    out = []
    for d in sets:
        for arm, c in sorted((a, c) for (cd, a), c in cells.items() if cd == d):
            parts = arm.split("+")
            cv = [parts.pop()] if c["out_of_fold"] else []
            if len(parts) < 2 or parts[0] in BASELINES or parts[1] == "ctl":
                continue
            control = "+".join([parts[0], "ctl", *cv])
            rerun = bool(set(cells.get((d, control), {}).get("commits", [])) & set(c["commits"]))
            if not rerun:
                control = "+".join([parts[0], *cv])
            if (d, control) not in cells:
                continue
            ours, theirs = c["val_by_seed"], cells[(d, control)]["val_by_seed"]
            seeds = sorted(set(ours) & set(theirs))
            if not seeds:
                continue
            v, base = _seed_mean(ours, seeds, SCORE), _seed_mean(theirs, seeds, SCORE)
            if v is None or base is None:
                continue
            auc, auc_base = _seed_mean(ours, seeds, "auc"), _seed_mean(theirs, seeds, "auc")
            auc_part = f"; AUC {auc - auc_base:+.3f}" if auc is not None and auc_base is not None else ""
            gain = round(v - base, 3) + 0.0  # + 0.0: no "-0.000"
            seed_part = f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"
            for s in seeds if rerun else []:  # only P+ctl is meant to share the lever's code
                if ours[s].get("commit") != theirs[s].get("commit"):
                    seed_part += f"; seed {s} at two commits: {ours[s].get('commit')}, {theirs[s].get('commit')}"
            out.append(f"- {d}, {arm}: {v:.3f} ({gain:+.3f} against {control}{auc_part}; {seed_part})")
    head = (
        "\nLever trials: val balanced accuracy, and its change (and the change in val AUC) against the preset "
        "without the lever, on the seeds both ran:\n"
    )
    return [head, *out] if out else []


def plotted(arm: str) -> bool:
    """Untouched presets and baselines, on a single split or out of fold; lever trials stay in the table."""
    return all(v.startswith("cv") for v in arm.split("+")[1:])


def plot(results: Path, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = summarise(load_results(results))
    rows = [[d for d in sets if any(k[0] == d and plotted(k[1]) for k in cells)] for sets in SUITE.values()]
    rows = [r for r in rows if r]
    if not rows:
        return None

    def arms_of(dataset: str) -> list[str]:
        arms = [a for (d, a) in cells if d == dataset and plotted(a)]
        return sorted(arms, key=lambda a: ("+" in a, a.split("+")[0] not in BASELINES, a))

    # One row per modality; a panel's width follows its number of arms, so labels do not overlap.
    width = max(sum(len(arms_of(d)) + 1 for d in r) for r in rows)
    fig = plt.figure(figsize=(0.42 * width + 1.5, 4.4 * len(rows)))
    grid = fig.add_gridspec(len(rows), width)
    first = None
    for i, row in enumerate(rows):
        at = 0
        for dataset in row:
            arms, start = arms_of(dataset), at
            at += len(arms) + 1
            ax = fig.add_subplot(grid[i, start:at], sharey=first)
            first = first or ax
            val = [cells[(dataset, a)][f"val_{SCORE}"] or 0 for a in arms]
            test = [cells[(dataset, a)][f"test_{SCORE}"] or 0 for a in arms]
            xs = np.arange(len(arms))
            ax.bar(xs - 0.2, val, 0.4, label="val")
            ax.bar(xs + 0.2, test, 0.4, label="test")
            ax.set_xticks(xs, [a.split("/")[-1] for a in arms], rotation=60, ha="right", fontsize=7)
            ax.set_title(dataset, fontsize=8)
            ax.set_ylim(0.4, 1.0)
            ax.grid(axis="y", alpha=0.3)
            if start > 0:  # the row's first panel carries the axis label
                ax.tick_params(labelleft=False)
            else:
                ax.set_ylabel("balanced accuracy")
    assert first is not None
    fig.legend(*first.get_legend_handles_labels(), loc="upper right", fontsize=8)
    fig.suptitle("untouched presets and baselines (+cv3: out of fold on grouped folds; lever trials: see the table)",
                 fontsize=8)  # fmt: skip
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modality", action="append", choices=list(SUITE), help="default: every modality")
    p.add_argument("--dataset", action="append", help="only these development sets")
    p.add_argument("--arm", action="append", help="only these arms (a preset name, feature-extraction, plain)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a lever to try (needs --variant)")
    p.add_argument("--variant", help="name of the --set variant: its runs are kept apart as PRESET+VARIANT")
    p.add_argument("--datasets-root", type=Path, default=ROOT.parent / "shared" / "datasets")
    p.add_argument("--results", type=Path, default=RESULTS, help="one JSON per run (resumes from here)")
    p.add_argument("--work", type=Path, default=WORK, help="run directories, logs and the shared tlcore cache")
    p.add_argument("--plan", action="store_true", help="list the selected runs and whether each is done")
    p.add_argument("--table", action="store_true", help="print the markdown table and write the plot")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench" / "presets.png")
    args = p.parse_args()
    if bool(args.set) != bool(args.variant):
        p.error("--set and --variant go together: a lever's runs are named by their variant")
    if args.table:
        print(table(args.results))
        written = plot(args.results, args.plot)
        print(f"\nplot: {written}" if written else "\nno results yet")
        return
    jobs = plan(args.modality or list(SUITE), args.dataset, args.arm, args.seeds, args.set, args.variant)
    if not jobs:
        p.error("the filters select no run: see --modality/--dataset/--arm")
    todo = [j for j in jobs if not (args.results / f"{j.key}.json").is_file()]
    if args.plan:
        for j in jobs:
            print(f"{'todo' if j in todo else 'done'}  {j.key}")
        print(f"{len(todo)} of {len(jobs)} left")
        return
    for i, job in enumerate(todo, 1):
        missing = args.datasets_root / job.dataset
        if not missing.is_dir():
            print(f"skip {job.key}: no folder {missing}", flush=True)
            continue
        print(f"[{i}/{len(todo)}] {job.key} ({datetime.now().strftime('%H:%M')})", flush=True)
        try:
            r = run_job(job, args.datasets_root, args.results, args.work)
        except Exception as exc:  # one failed run must not stop a night's suite; it stays on the plan
            print(f"  FAILED {job.key}: {type(exc).__name__}: {exc}", flush=True)
            continue
        print(f"  val bal. acc. {_f(r['val'][SCORE])}  test bal. acc. {_f(r.get('test', {}).get(SCORE))}  "
              f"{r['wall_s'] / 60:.1f} min", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
