#!/usr/bin/env bash
# The prepared GPU benchmark (one call on a lent GPU machine, JSON under $OUT). With the decoded-cache
# epochs added, IMAGES=10000 keeps it near 8 minutes on an H200 (estimate: not yet run in this form).
# Needs, carried in .bench/: wheels/ (tlcore's pure-Python deps the GPU image lacks) and beans/
# (an ImageFolder copy of ../shared/datasets/beans). Run from the repository root:
#   mkdir -p .bench && cp -r ../shared/datasets/beans .bench/ && pip download ... -d .bench/wheels
set -euo pipefail
OUT=${OUT:-/tmp/tlcore-bench}
mkdir -p "$OUT"
python3 -m pip install --no-index --no-deps -q .bench/wheels/*.whl
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt"
python3 benchmarks/throughput.py --data .bench/beans --models "${MODELS:-efficientnet_b0,resnet50}" \
  --batch-size 256 --steps 30 --warmup 5 --images "${IMAGES:-30000}" --compile --out "$OUT/gpu.json"
# The one-process decode + augment rate on this machine's CPU (what each DataLoader worker supplies).
python3 benchmarks/pipeline.py --data .bench/beans --images 400 --sizes 1024 --out "$OUT/pipeline.json"
