"""The ``tl`` command line. User errors print one line and exit non-zero; ``--debug`` shows tracebacks.

One module per command group registers its subcommands (``add_commands``); :mod:`tlcore.cli.common` holds
what several of them share. Library code never imports this package.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import tlcore
from tlcore.cli import advise, cache, common, inference, plugins, reports, stress, train
from tlcore.cli.train import settings_help
from tlcore.errors import TlcoreError

__all__ = ["EXAMPLES", "build_parser", "main", "settings_help"]

EXAMPLES = """\
examples:
  tl train --preset feature-extraction --data ../shared/datasets/beans --output runs/beans-fe
  tl train --preset fine-tuning --data ./my_images --output runs/ft --set epochs=5 --set backbone=resnet50
  tl evaluate runs/ft --data ./other_hospital
  tl stress runs/ft           (which acquisition changes - blur, JPEG, framing - flip predictions on val)
  tl predict runs/ft leaf1.jpg leaf2.jpg
  tl report runs/ft          (HTML: metrics, plots, Grad-CAM of errors)   tl explain runs/ft leaf1.jpg
  tl export runs/ft --format onnx
  tl advise --data DIR        (which backbone; feature extraction or fine-tuning?)
  tl compare --preset fine-tuning --data DIR   (learning curves: scratch vs transfer)
  tl list presets            tl list backbones lite        tl plugins
  tl plugin new derm         (an installable plugin skeleton; see docs/plugins/tutorial.md)

data layouts: <root>/<split>/<class>/<image> (splits train, val, test; a missing val/test is carved out
of train with a fixed seed), <root>/<class>/<image>, a CSV manifest, or a name from `tl list datasets`.
"""

#: The command groups, in the order `tl --help` lists their commands.
GROUPS = (train, inference, plugins, reports, advise, cache, stress)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tl",
        description="tlcore: transfer learning for image classification (feature extraction and fine-tuning "
        "of ImageNet-pretrained models), with plugins for medical imaging and agriculture.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="show tlcore and plugin versions")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def _versions() -> str:
    lines = [f"tlcore {tlcore.__version__}"]
    for info in common.host().plugins():
        if not info.default:
            lines.append(f"  {info.name} {info.version or '?'} ({info.status})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("TLCORE_DEBUG") == "1"
    try:
        if args.version:
            print(_versions())
            return 0
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        with common.warnings_printed():
            return int(args.func(args))
    except TlcoreError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tl list ... | head`: the reader left; not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps Python's exit flush quiet
        return 0
    except Exception as exc:
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"error: unexpected {type(exc).__name__}: {first[:300]} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
