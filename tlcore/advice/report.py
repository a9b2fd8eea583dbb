"""Terminal tables for ``tl advise`` and ``tl compare`` (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _pct(probe: dict[str, Any] | None) -> str:
    if not probe:
        return "-"
    return f"{probe['accuracy']:.3f}±{probe['std_error']:.3f}"


LEGEND = (
    "LogME: log evidence per image, higher is better. Probes: cross-validated accuracy ± standard error. "
    "Similarity: 1 = the BatchNorm statistics of the pretraining data, 0 = as far off as noise. "
    "ImageNet head: mean top-class probability, most frequent class. img/s (inference) and train img/s: "
    "batch 8, synthetic input, from CPU time on a CPU (what the cores give when not shared; wall-clock "
    "figures are in advise.json). Fine-tune min: estimated for the full train split and the fine-tuning "
    "preset's epochs."
)


def advice_tables(report: dict[str, Any]) -> tuple[Table, Table]:
    """Transferability (ranked) and cost, one row per candidate."""
    ranking = report["recommendation"]["ranking"]
    chosen = report["recommendation"]["candidate"]
    data = report["data"]
    scores = Table(
        title=f"tl advise: {data['source']} ({data['train_images']} train images, {len(data['classes'])} "
        f"classes; scored on {data['subsample']['images']})"
    )
    cost = Table(title="cost on this machine")
    for name in ("rank", "candidate", "LogME", "linear probe", "kNN probe", "similarity", "ImageNet head"):
        scores.add_column(
            name, justify="left" if name in ("candidate", "ImageNet head") else "right", no_wrap=name == "candidate"
        )
    for name in ("candidate", "params M", "GFLOPs", "img/s", "train img/s", "train MB", "fine-tune min"):
        cost.add_column(name, justify="left" if name == "candidate" else "right", no_wrap=name == "candidate")
    ordered = sorted(report["candidates"], key=lambda c: ranking.index(c["name"]) if c["name"] in ranking else 99)
    for c in ordered:
        label = f"[bold green]{c['name']}[/]" if c["name"] == chosen else c["name"]
        if c.get("error"):
            scores.add_row("-", label, f"[red]{c['error']}", "", "", "", "")
            continue
        sim, head = c["similarity"], c["similarity"].get("imagenet_head")
        top = head["top_classes"][0] if head and head["top_classes"] else None
        scores.add_row(
            str(ranking.index(c["name"]) + 1),
            label,
            "-" if c["logme"] is None else f"{c['logme']:.3f}",
            _pct(c["linear_probe"]),
            _pct(c["knn_probe"]),
            "-" if sim["score"] is None else f"{sim['score']:.2f}",
            f"{head['max_softmax']:.2f} {top['class']}" if head and top else "-",
        )
        k = c["cost"]
        cost.add_row(
            label,
            f"{k['parameters'] / 1e6:.1f}",
            f"{k['gflops']:.2f}",
            f"{k['images_per_s']:.0f}",
            f"{k['train_images_per_s']:.0f}",
            f"{k['train_memory_mb']:.0f}",
            f"{k['finetune_minutes_estimate']:.0f}",
        )
    return scores, cost


def print_advice(report: dict[str, Any], console: Console) -> None:
    for table in advice_tables(report):
        console.print(table)
    console.print(f"[dim]{LEGEND}")
    rec = report["recommendation"]
    strategy = f", strategy {rec['strategy']}" if rec["strategy"] else ""
    console.print(f"\n[bold]Recommendation:[/] {rec['candidate']}, {rec['technique']}{strategy}")
    for reason in rec["reasons"]:
        console.print(f"  - {reason}")
    for warning in rec["warnings"]:
        console.print(f"  [yellow]! {warning}")
    inputs = {k: v for k, v in rec["inputs"].items() if k != "thresholds"}
    console.print("  rule inputs: " + ", ".join(f"{k}={v}" for k, v in inputs.items()))
    console.print("  thresholds: " + ", ".join(f"{k}={v}" for k, v in rec["inputs"]["thresholds"].items()))
    console.print(f"  run it: [bold]{rec['command']}")
