"""The two learning-curve plots of ``tl compare`` (matplotlib, Agg: no display needed; the ``reports`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The files :func:`plot_curves` writes: test accuracy against labelled images, and against wall-clock time.
PLOTS = ("accuracy_vs_labels.png", "accuracy_vs_time.png")

STYLE = {
    "scratch": ("tab:gray", "s"),
    "feature-extraction": ("tab:blue", "o"),
    "fine-tuning": ("tab:red", "^"),
}


def plot_curves(curves: Sequence[dict[str, Any]], output: Path, title: str) -> list[Path]:
    from tlcore.extras import require

    require("matplotlib", "reports", "drawing tl compare's plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    paths = []
    axes = (
        ("labelled_images", "labelled training images (log scale)"),
        ("wall_clock_s_mean", "wall-clock seconds per run, cold cache (log scale)"),
    )
    for (x_key, x_label), name in zip(axes, PLOTS, strict=True):
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
        for method, (colour, marker) in STYLE.items():
            points = sorted((c for c in curves if c["method"] == method), key=lambda c: c["fraction"])
            if not points:
                continue
            xs = [p[x_key] for p in points]
            ys = [p["test_accuracy_mean"] for p in points]
            errs = [p["test_accuracy_std"] for p in points]
            ax.errorbar(xs, ys, yerr=errs, color=colour, marker=marker, capsize=3, label=method)
            if x_key == "wall_clock_s_mean":
                for p in points:
                    ax.annotate(
                        f"{p['fraction']:.0%}",
                        (p[x_key], p["test_accuracy_mean"]),
                        fontsize=7,
                        xytext=(3, -9),
                        textcoords="offset points",
                        color=colour,
                    )
        ax.set_xscale("log")
        if x_key == "labelled_images":  # a few sizes: label them; times: plain decades
            ticks = sorted({c[x_key] for c in curves})
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        else:
            ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(x_label)
        ax.set_ylabel("test accuracy")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        path = output / name
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
