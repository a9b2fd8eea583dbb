"""Training steps on the CPU with glibc's malloc defaults and with tlcore's settings (tlcore.cpu_memory).

Each measurement is a fresh process (malloc settings are per process), alternating the two, so that other
load on the machine falls on both alike. A step is forward, backward and AdamW on random images; the
script prints seconds and minor page faults per step and writes them as JSON.

    python benchmarks/cpu_memory.py --rounds 2 --out docs/bench/cpu_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def child(mode: str, model_name: str, batch: int, size: int, steps: int, warmup: int) -> dict[str, Any]:
    import timm
    import torch

    from tlcore import cpu_memory
    from tlcore.runtime import prepare_model

    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=3)
    if mode == "tuned":
        model = prepare_model(model, torch.device("cpu"))
    else:  # the same memory format, malloc left alone
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    faults, started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - started
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {
        "mode": mode,
        "s_per_step": seconds / steps,
        "faults_per_step": faults / steps,
        "cpu_memory": cpu_memory.state(),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of processes (default, tuned)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", choices=["default", "tuned"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (args.model, args.batch_size, args.size, args.steps, args.warmup)
    if args.child:
        print(json.dumps(child(args.child, *shape)))
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    runs: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        for mode in ("default", "tuned"):
            cmd = [sys.executable, __file__, "--child", mode, "--model", args.model, "--batch-size",
                   str(args.batch_size), "--size", str(args.size), "--steps", str(args.steps),
                   "--warmup", str(args.warmup)]  # fmt: skip
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            r = runs[-1]
            print(f"{mode:8s} {r['s_per_step']:7.2f} s/step {r['faults_per_step']:10.0f} page faults/step", flush=True)
    summary = {
        mode: {
            "s_per_step": statistics.median(r["s_per_step"] for r in runs if r["mode"] == mode),
            "faults_per_step": statistics.median(r["faults_per_step"] for r in runs if r["mode"] == mode),
        }
        for mode in ("default", "tuned")
    }
    speedup = summary["default"]["s_per_step"] / summary["tuned"]["s_per_step"]
    print(f"median: default {summary['default']['s_per_step']:.2f} s/step, tuned {summary['tuned']['s_per_step']:.2f}"
          f" s/step ({speedup:.2f}x)")  # fmt: skip
    if args.out:
        record = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min_at_end": os.getloadavg()[0],
            "settings": vars(args) | {"out": str(args.out)},
            "runs": runs,
            "median": summary,
            "speedup": speedup,
        }
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
