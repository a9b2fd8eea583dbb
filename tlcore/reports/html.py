"""``tl report``: one self-contained HTML page per run (jinja2; every image embedded as a data URI). Needs the
``reports`` extra (jinja2, matplotlib, grad-cam).

The page is built from the run directory alone: ``report.json`` (metrics, provenance, timing),
``model.json``, ``predictions.csv`` and the PNG plots. The error gallery also needs the trained model
and the test images, and says so when they are gone.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

from tlcore import io_atomic
from tlcore.extras import require
from tlcore.metrics.tasks import LOWER_IS_BETTER, task_table
from tlcore.reports.plots import PLOTS, reliability_of
from tlcore.reports.predictions import PREDICTIONS, SplitPredictions, confident_mistakes, read_predictions
from tlcore.reports.run_dir import task_and_classes

#: report.json sections the page renders in their own place; any other top-level key is listed at the end.
#: ``skipped_outputs`` (plots a run without matplotlib skipped) is left out: the page redraws the plots.
RENDERED = frozenset(
    {"tlcore_version", "created", "preset", "technique", "strategy", "val", "test", "model", "data", "training"}
    | {"timing", "environment", "config", "intervals", "operating_point", "task", "leakage", "shift"}
    | {"skipped_outputs"}
)


def data_uri(path: Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers for people: floats to ``digits`` decimals, large ones with separators, None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 10 ** -(digits + 1)):
            return f"{value:.{digits}g}"
        return f"{value:,.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _interval(entry: Any) -> tuple[float, float] | None:
    """``{"low", "high"}``, ``{"lower", "upper"}`` or ``[low, high]`` -> ``(low, high)``; None otherwise."""
    if isinstance(entry, dict):
        low, high = entry.get("low", entry.get("lower")), entry.get("high", entry.get("upper"))
    elif isinstance(entry, (list, tuple)) and len(entry) == 2:
        low, high = entry
    else:
        return None
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        return float(low), float(high)
    return None


def test_intervals(report: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of test metrics, wherever the report keeps them (``intervals.metrics`` or
    ``test.intervals``)."""
    sources = [
        (report.get("intervals") or {}).get("metrics"),
        (report.get("test") or {}).get("intervals"),
        (report.get("test") or {}).get("ci"),
    ]
    out: dict[str, tuple[float, float]] = {}
    for source in sources:
        if isinstance(source, dict):
            for name, entry in source.items():
                interval = _interval(entry)
                if interval is not None:
                    out.setdefault(name, interval)
    return out


def scalar_metrics(split: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in split.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n"}


def metrics_rows(report: dict[str, Any], ece: dict[str, float]) -> list[dict[str, Any]]:
    """One row per scalar metric: val, test and the test interval when there is one."""
    val, test = report.get("val") or {}, report.get("test") or {}
    intervals = test_intervals(report)
    names = list(dict.fromkeys([*scalar_metrics(test), *scalar_metrics(val)]))
    rows = []
    for name in names:
        rows.append(
            {
                "name": name.replace("_", " "),
                "val": fmt(val.get(name)),
                "test": fmt(test.get(name)),
                "interval": intervals.get(name),
                "lower_is_better": name in LOWER_IS_BETTER,
            }
        )
    if ece:
        rows.append(
            {
                "name": "ECE (expected calibration error)",
                "val": fmt(ece.get("val")),
                "test": fmt(ece.get("test")),
                "interval": None,
                "lower_is_better": True,
            }
        )
    # Intervals for metrics that have no point value in the split (sensitivity, specificity).
    for name, interval in intervals.items():
        if name not in names:
            estimate = ((report.get("intervals") or {}).get("metrics") or {}).get(name, {})
            point = estimate.get("estimate") if isinstance(estimate, dict) else None
            rows.append(
                {
                    "name": name.replace("_", " "),
                    "val": "—",
                    "test": fmt(point),
                    "interval": interval,
                    "lower_is_better": False,
                }
            )
    return rows


def headline_cards(report: dict[str, Any], task: str, ece: float | None) -> list[dict[str, Any]]:
    test = report.get("test") or {}
    intervals = test_intervals(report)
    cards = [
        {"name": name.replace("_", " "), "value": fmt(test[name]), "interval": intervals.get(name)}
        for name in task_table(task).summary
        if test.get(name) is not None
    ]
    if ece is not None and not math.isnan(ece):
        cards.append({"name": "ECE", "value": fmt(ece), "interval": None})
    return cards


def per_class_table(report: dict[str, Any]) -> dict[str, Any] | None:
    """The test split's per-class / per-label / per-target scores as ``{"title", "columns", "rows"}``."""
    test = report.get("test") or {}
    per_class_auc = (report.get("intervals") or {}).get("per_class_auc") or {}
    for key, title in (("per_class", "class"), ("per_label", "label"), ("per_target", "target")):
        table = test.get(key)
        if isinstance(table, dict) and table:
            columns = list(dict.fromkeys(c for scores in table.values() if isinstance(scores, dict) for c in scores))
            rows = []
            for name, scores in table.items():
                cells = [fmt(scores.get(c)) for c in columns]
                auc_ci = _interval(per_class_auc.get(name))
                rows.append({"name": name, "cells": cells, "auc_interval": auc_ci})
            return {
                "title": title,
                "columns": [c.replace("_", " ") for c in columns],
                "rows": rows,
                "auc_column": columns.index("auc") if "auc" in columns else None,
            }
    return None


def data_section(report: dict[str, Any]) -> dict[str, Any]:
    data = dict(report.get("data") or {})
    counts = data.get("counts") or {}
    per_class = data.get("per_class") or {}
    splits = list(counts)
    classes = list(data.get("classes") or [])
    class_rows = [
        {"name": c, "cells": [fmt((per_class.get(s) or {}).get(c, 0 if per_class.get(s) else None)) for s in splits]}
        for c in classes
    ]
    facts = [
        ("source (--data)", data.get("source")),
        ("resolved root", data.get("root")),
        ("adapter", data.get("adapter")),
        ("task", data.get("task")),
        ("channels", data.get("channels")),
        ("classes", len(classes)),
    ]
    split_origin = data.get("split_origin") or {}
    skipped = list(data.get("skipped_images") or [])
    shown = {"source", "root", "adapter", "task", "channels", "classes", "counts", "per_class", "split_origin"}
    shown |= {"skipped_images"}
    extra = {k: v for k, v in data.items() if k not in shown}
    if report.get("leakage"):
        extra["leakage (duplicate images and groups across splits)"] = report["leakage"]
    if report.get("shift"):
        extra["shift (how well pretrained features tell val/test images from train: AUC 0.5 = alike)"] = report["shift"]
    return {
        "facts": [(k, fmt(v)) for k, v in facts if v is not None],
        "splits": splits,
        "counts": [fmt(counts[s]) for s in splits],
        "origin": [split_origin.get(s, "—") for s in splits],
        "class_rows": class_rows,
        "skipped": [fmt(s) for s in skipped[:20]],
        "skipped_total": len(skipped),
        "extra": json.dumps(extra, indent=2, default=str) if extra else None,
    }


def model_section(report: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, str]]:
    model = report.get("model") or {}
    weights = model.get("weights") or {}
    pre = model.get("preprocessing") or {}
    params = model.get("parameters") or {}
    rows = [
        ("backbone", model.get("backbone")),
        ("timm architecture", model.get("timm_name")),
        ("weights source", weights.get("source")),
        ("weights origin", weights.get("origin")),
        ("pretrained", weights.get("pretrained")),
        ("head", model.get("head")),
        ("saved head", meta.get("head") if meta.get("head") != model.get("head") else None),
        ("input channels", model.get("in_chans")),
        ("input size", pre.get("input_size")),
        ("normalisation mean / std", f"{fmt(pre.get('mean'))} / {fmt(pre.get('std'))}" if pre.get("mean") else None),
        ("interpolation, crop", f"{pre.get('interpolation')}, crop_pct {fmt(pre.get('crop_pct'))}" if pre else None),
        ("test-time mirrored views", meta.get("tta")),
        ("backbone parameters", params.get("backbone_total")),
        ("trainable at the end", params.get("backbone_trainable_at_end")),
        ("model file", model.get("file")),
    ]
    return [(k, fmt(v)) for k, v in rows if v is not None]


def training_section(report: dict[str, Any]) -> dict[str, Any]:
    curves = ("head_history", "head_size_curve")  # plotted as the learning curves
    training = {k: v for k, v in (report.get("training") or {}).items() if k not in curves}
    task = report.get("task")
    objective: dict[str, Any] = task if isinstance(task, dict) else {}
    config = report.get("config") or {}
    facts = [
        ("preset", report.get("preset")),
        ("technique", report.get("technique")),
        ("strategy", report.get("strategy")),
        *((k.replace("_", " "), v) for k, v in training.items()),
        *((f"objective: {k}", v) for k, v in objective.items() if k != "task"),
    ]
    return {
        "facts": [(k, fmt(v)) for k, v in facts if v is not None],
        "config": [(k, fmt(v)) for k, v in config.items()],
        "timing": [(k.replace("_", " "), fmt(v, 2)) for k, v in (report.get("timing") or {}).items()],
    }


def operating_point_section(report: dict[str, Any]) -> dict[str, Any] | None:
    point = report.get("operating_point")
    if not isinstance(point, dict):
        return None
    keys = ("sensitivity", "specificity", "ppv", "npv", "accuracy", "balanced_accuracy")
    intervals = point.get("test_intervals") or {}
    rows = [
        {
            "name": k,
            "val": fmt((point.get("val") or {}).get(k)),
            "test": fmt((point.get("test") or {}).get(k)),
            "interval": _interval(intervals.get(k)),
        }
        for k in keys
        if (point.get("test") or {}).get(k) is not None or (point.get("val") or {}).get(k) is not None
    ]
    return {
        "rule": point.get("rule"),
        "positive": point.get("positive_class"),
        "threshold": fmt(point.get("threshold"), 4),
        "note": point.get("note"),
        "rows": rows,
    }


def gallery_section(
    run_dir: Path, test: SplitPredictions | None, host: Any, limit: int
) -> tuple[list[dict[str, str]], str | None]:
    """Grad-CAM of the ``limit`` most confident test errors, as embedded JPEG thumbnails; or why there are none."""
    if limit <= 0:
        return [], "the gallery was switched off (--errors 0)"
    if test is None:
        return [], f"no test predictions ({PREDICTIONS} is missing)"
    mistakes = confident_mistakes(test, limit)
    if not mistakes:
        return [], f"the model made no errors on the {len(test)} test images"
    import torch

    from tlcore.errors import TlcoreError
    from tlcore.predict import Predictor
    from tlcore.reports.explain import Explainer, display_name, png_bytes, side_by_side
    from tlcore.specs import source_file

    present = [m for m in mistakes if Path(source_file(m.path)).is_file()]  # a file, or a volume's slice
    try:
        predictor = Predictor.load(host, run_dir, device=torch.device("cpu"))  # Grad-CAM runs on the CPU
        # The images are read as the run read them: its adapter (a DICOM windowed, a volume's slice).
        reader = predictor.reader_for(host, [m.path for m in present])
        explainer = Explainer(predictor.model, predictor.meta, reader)
        meta = predictor.meta
        layer = explainer.layer.name
    except TlcoreError as exc:
        return [], f"no heatmaps: {exc}"
    if not present:
        return [], f"the test images are no longer at their recorded paths (first: {mistakes[0].path})"
    try:  # one batch; image by image only when one of them fails
        explained: list[Any] = explainer.explain([m.path for m in present], [m.explain_index for m in present])
    except Exception:
        explained = []
        for mistake in present:
            try:
                explained.extend(explainer.explain([mistake.path], [mistake.explain_index]))
            except Exception as exc:  # one unreadable image should not cost the whole gallery
                explained.append(f"{type(exc).__name__}: {exc}")
    items = []
    for mistake, explanation in zip(present, explained, strict=True):
        if isinstance(explanation, str):
            items.append(
                dict.fromkeys(("src", "truth", "predicted", "score", "explained"), "") | {"error": explanation}
            )
            items[-1]["file"] = display_name(mistake.path)
            continue
        picture = side_by_side(explanation, "", min_side=160).convert("RGB")
        uri = base64.b64encode(png_bytes(picture, "JPEG", quality=82)).decode("ascii")
        score = f"{mistake.score:.2f}" if test.task != "regression" else f"error {mistake.score:.3g}"
        items.append(
            {
                "src": f"data:image/jpeg;base64,{uri}",
                "file": display_name(mistake.path),
                "truth": mistake.truth,
                "predicted": mistake.predicted,
                "score": score,
                "explained": meta.classes[mistake.explain_index],
                "error": "",
            }
        )
    note = None if len(present) == len(mistakes) else f"{len(mistakes) - len(present)} image(s) no longer found"
    return items, f"heatmaps from layer {layer}" + (f"; {note}" if note else "")


STRESS_CAPTION = (
    "From `tl stress`: the headline metric with the same images acquired differently (blur, JPEG, exposure, "
    "framing...); the dashed line is the unchanged images' score. Red bars cost 0.03+, or changed 5 %+ of the "
    "predictions while a class lost 0.05+ of its recall: cues the model leans on that another site may not "
    "share (details in stress-SPLIT.json)."
)


def render_report(run_dir: Path, report: dict[str, Any], host: Any, errors: int = 8) -> str:
    """The HTML page for ``run_dir`` as a string."""
    import jinja2

    task, classes = task_and_classes(report)
    meta_path = run_dir / "model.json"
    try:  # a damaged model.json costs the model section's extra rows; the gallery says what is wrong
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    predictions: dict[str, SplitPredictions] = {}
    predictions_note = None
    try:
        predictions = read_predictions(run_dir / PREDICTIONS, task, classes)
    except Exception as exc:
        predictions_note = str(exc)
    ece: dict[str, float] = {}
    if task in ("classification", "multilabel"):
        ece = {split: reliability_of(p).ece for split, p in predictions.items() if len(p)}
    plots = [
        {"id": key, "title": plot.title, "caption": plot.caption, "src": data_uri(run_dir / plot.file)}
        for key, plot in PLOTS.items()
        if (run_dir / plot.file).is_file()
    ]
    for path in sorted(run_dir.glob("stress-*.png")):  # written by `tl stress`, after training
        plots.append(
            {
                "id": path.stem,
                "title": f"Stress test ({path.stem.removeprefix('stress-')} split)",
                "caption": STRESS_CAPTION,
                "src": data_uri(path),
            }
        )
    gallery, gallery_note = gallery_section(run_dir, predictions.get("test"), host, errors)
    data = report.get("data") or {}
    others = {k: v for k, v in report.items() if k not in RENDERED}
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tlcore.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    template = env.get_template("report.html.j2")
    return template.render(
        title=f"{Path(str(data.get('source') or run_dir)).name} · {report.get('preset') or report.get('technique')}",
        run_dir=str(run_dir),
        report=report,
        task=task,
        cards=headline_cards(report, task, ece.get("test")),
        metrics=metrics_rows(report, ece),
        intervals_method=(report.get("intervals") or {}).get("method"),
        intervals_level=(report.get("intervals") or {}).get("level"),
        per_class=per_class_table(report),
        operating_point=operating_point_section(report),
        plots=plots,
        predictions_note=predictions_note,
        gallery=gallery,
        gallery_note=gallery_note,
        data=data_section(report),
        model=model_section(report, meta),
        training=training_section(report),
        environment=[(k, fmt(v)) for k, v in (report.get("environment") or {}).items()],
        others=json.dumps(others, indent=2, default=str) if others else None,
    )


def write_report(run_dir: Path, report: dict[str, Any], host: Any, output: Path, errors: int = 8) -> Path:
    html = render_report(run_dir, report, host, errors)
    io_atomic.ensure_dir(output.parent)
    io_atomic.atomic_write(output, lambda tmp: tmp.write_text(html, encoding="utf-8"))
    return output


def html_report(host: Any, run_dir: Path, output: Path | None = None, errors: int = 8) -> Path:
    """``tl report``: the run's HTML page (default ``RUN_DIR/report.html``), its plots redrawn first from
    predictions.csv so the page shows this version's (a read-only run keeps the ones it has); a plot that
    cannot be drawn is a warning. ``errors``: test errors in the Grad-CAM gallery."""
    from tlcore.reports.explain import require_grad_cam
    from tlcore.reports.plots import require_matplotlib, write_plots
    from tlcore.reports.run_dir import load_report
    from tlcore.runtime import warn

    require("jinja2", "reports", "tl report")  # the page, its plots and its heatmaps: the `reports` extra
    require_matplotlib("tl report")
    require_grad_cam("tl report")
    report = load_report(run_dir)
    task, classes = task_and_classes(report)
    output = output or run_dir / "report.html"
    io_atomic.check_writable(output.parent)  # a read-only folder fails now, in one line
    if (run_dir / PREDICTIONS).is_file() and io_atomic.is_writable(run_dir):
        _, warnings = write_plots(run_dir, report, read_predictions(run_dir / PREDICTIONS, task, classes))
        for warning in warnings:
            warn(warning)
    return write_report(run_dir, report, host, output, errors=errors)
