"""``tl explain``, ``tl report`` and ``tl export``: the commands that turn a run directory into things people
read and deploy. Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tlcore import io_atomic
from tlcore.cli import common
from tlcore.errors import TlcoreError


def cmd_explain(args: argparse.Namespace) -> int:
    import torch

    from tlcore.predict import Predictor
    from tlcore.reports.explain import Explainer, write_overlays

    run_dir = common.run_dir(args.run_dir)
    host = common.host()
    predictor = Predictor.load(host, run_dir, device=torch.device("cpu"))  # Grad-CAM runs on the CPU
    # Read as `tl predict` reads them: the run's adapter (a DICOM windowed, VOLUME::SLICE), else decoded.
    inputs, warning = predictor.read_files(host, args.images)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    meta = predictor.meta
    target = None
    if args.class_name is not None:
        if args.class_name not in meta.classes:
            raise TlcoreError(f"unknown class {args.class_name!r}", f"the run's classes: {', '.join(meta.classes)}")
        target = meta.classes.index(args.class_name)
    explainer = Explainer(predictor.model, meta, inputs.reader)
    output = Path(args.output) if args.output else run_dir / "explanations"
    with common.status(f"Grad-CAM of {len(inputs.items)} image(s)"):
        rows = write_overlays(explainer, inputs.items, output, target)
    for row in rows:
        print(json.dumps(row))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tlcore.reports.html import write_report
    from tlcore.reports.plots import write_plots
    from tlcore.reports.predictions import PREDICTIONS, read_predictions
    from tlcore.reports.run_dir import load_report, task_and_classes

    run_dir = common.run_dir(args.run_dir)
    report = load_report(run_dir)
    task, classes = task_and_classes(report)
    output = Path(args.output) if args.output else run_dir / "report.html"
    io_atomic.check_writable(output.parent)  # a read-only folder fails now, in one line
    # Redraw, so the page shows the plots of this tlcore version (a read-only run keeps the ones it has).
    if (run_dir / PREDICTIONS).is_file() and io_atomic.is_writable(run_dir):
        _, warnings = write_plots(run_dir, report, read_predictions(run_dir / PREDICTIONS, task, classes))
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    with common.status("writing the report (Grad-CAM of the most confident errors)"):
        write_report(run_dir, report, common.host(), output, errors=args.errors)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, self-contained; open it in a browser)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from tlcore.predict import Predictor
    from tlcore.reports.export import SUFFIX, check_exportable, export_model, recorded_test_images

    run_dir = common.run_dir(args.run_dir)
    host = common.host()
    predictor = Predictor.load(host, run_dir, device=torch.device("cpu"))  # exported and checked on the CPU
    model, meta = predictor.model, predictor.meta
    check_exportable(meta, model)
    output = Path(args.output) if args.output else run_dir / f"model{SUFFIX[args.format]}"
    io_atomic.check_writable(output.parent)  # a read-only folder fails now, in one line, not after the export
    test_images = recorded_test_images(run_dir)
    # The test images are read as the run read them (its adapter: a DICOM windowed, a volume's slice).
    reader = predictor.reader_for(host, test_images[:8]) if test_images else None
    with common.status(f"exporting to {args.format} and checking it against PyTorch"):
        result = export_model(model, meta, args.format, output, test_images, reader)
    print(json.dumps(result.as_dict()))
    return 0


def add_commands(sub: Any) -> None:
    """Add ``explain``, ``report`` and ``export`` to the ``tl`` subcommand parser ``sub``."""
    p = sub.add_parser(
        "explain",
        help="Grad-CAM heatmaps: where in each image a trained run looked",
        description="Write one PNG per image to --output: the image as the model sees it (resized and "
        "centre-cropped) next to its Grad-CAM overlay (red: regions that raised the output most). The "
        "layer is found automatically: the last convolutional stage of a CNN, or the last block of a vision "
        "transformer. Prints one JSON line per image.",
        epilog="example: tl explain runs/beans leaf1.jpg leaf2.jpg --class healthy",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --output of `tl train`")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--output", "-o", help="folder for the overlays (default RUN_DIR/explanations)")
    p.add_argument("--class", dest="class_name", metavar="NAME", help="explain this class instead of the predicted one")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "report",
        help="one self-contained HTML page: metrics, plots, error gallery, provenance",
        description="Write a single HTML file (images embedded, no external files) with the run's metrics "
        "and their intervals, learning curves, confusion matrix, ROC / precision-recall / calibration (or "
        "predicted-vs-true) plots, Grad-CAM of the most confident test errors, and where the data, weights, "
        "split and preset came from. Plots are redrawn from predictions.csv.",
        epilog="example: tl report runs/beans && xdg-open runs/beans/report.html",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --output of `tl train`")
    p.add_argument("--output", "-o", help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument(
        "--errors", type=int, default=8, metavar="N", help="test errors in the Grad-CAM gallery (default 8; 0: none)"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "export",
        help="export a trained run to ONNX or TorchScript, checked against PyTorch",
        description="Write the model with its normalisation and output activation built in: input float32 "
        "N x C x H x W pixels (0-255, resized and centre-cropped to the run's input size), output class "
        "probabilities. The export is reloaded (onnxruntime / torch.jit.load) and compared with PyTorch on a "
        "batch of the run's test images; the max abs difference is printed and must stay under 1e-4. "
        "PATH.json records the classes and preprocessing.",
        epilog="example: tl export runs/beans --format onnx --output beans.onnx",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --output of `tl train`")
    p.add_argument("--format", "-f", choices=["onnx", "torchscript"], default="onnx", help="default onnx")
    p.add_argument("--output", "-o", metavar="PATH", help="file to write (default RUN_DIR/model.onnx or model.pt)")
    p.set_defaults(func=cmd_export)
