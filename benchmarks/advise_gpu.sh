#!/usr/bin/env bash
# The advisor's validation on a lent GPU machine: one call, about 6 minutes, JSON under $OUT.
# Prepare here first (weights + dataset subsets into .bench/advise, wheels into .bench/wheels):
#   .venv/bin/python benchmarks/advise_prepare.py
# then run this with carry [".bench/advise", ".bench/wheels"]:
#   bash benchmarks/advise_gpu.sh
set -euo pipefail
OUT=${OUT:-/tmp/tlcore-advise}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .bench/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TLCORE_CACHE=/tmp/tlcore-cache HF_HUB_OFFLINE=1
mkdir -p /tmp/lite
for f in .bench/advise/weights/*.safetensors.xz; do
  xz -dc "$f" > "/tmp/lite/$(basename "$f" .xz)"
done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt"
python3 benchmarks/advise_validation.py \
  --data .bench/advise/data/beans .bench/advise/data/chest_xray_pneumonia \
  --weights-dir /tmp/lite --epochs "${EPOCHS:-15}" --out "$OUT/advise_validation.json" 2>&1 | tee "$OUT/log.txt"
