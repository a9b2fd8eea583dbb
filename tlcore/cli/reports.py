"""``tl explain``, ``tl report`` and ``tl export``: the commands that turn a run directory into things people
read and deploy. Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tlcore.cli import common


def cmd_explain(args: argparse.Namespace) -> int:
    from tlcore.reports.explain import explain_run

    run_dir = common.run_dir(args.run_dir)
    output = Path(args.output) if args.output else None
    with common.status(f"Grad-CAM of {len(args.images)} input(s)"):
        rows = explain_run(common.host(), run_dir, args.images, output, args.class_name)
    for row in rows:
        print(json.dumps(row))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tlcore.reports.html import html_report

    run_dir = common.run_dir(args.run_dir)
    with common.status("writing the report (Grad-CAM of the most confident errors)"):
        output = html_report(common.host(), run_dir, Path(args.output) if args.output else None, args.errors)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, self-contained; open it in a browser)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tlcore.reports.export import export_run

    run_dir = common.run_dir(args.run_dir)
    with common.status(f"exporting to {args.format} and checking it against PyTorch"):
        result = export_run(common.host(), run_dir, args.format, Path(args.output) if args.output else None)
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
        "transformer. Prints one JSON line per image. Needs the reports extra: "
        'pip install "tlcore[reports]".',
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
        "split and preset came from. Plots are redrawn from predictions.csv. Needs the reports extra: "
        'pip install "tlcore[reports]".',
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
        "PATH.json records the classes and preprocessing. ONNX needs the export extra: "
        'pip install "tlcore[export]"; TorchScript needs nothing more.',
        epilog="example: tl export runs/beans --format onnx --output beans.onnx",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --output of `tl train`")
    p.add_argument("--format", "-f", choices=["onnx", "torchscript"], default="onnx", help="default onnx")
    p.add_argument("--output", "-o", metavar="PATH", help="file to write (default RUN_DIR/model.onnx or model.pt)")
    p.set_defaults(func=cmd_export)
