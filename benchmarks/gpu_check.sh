#!/usr/bin/env bash
# The GPU check of issue 20: D1 to 1.01 x L* on 1 and N GPUs, and NCCL allreduce bandwidth.
# Run from the repository root on a machine with CUDA GPUs (torch with CUDA installed); it stops
# itself after 5 minutes. Results: benchmarks/results/gpu/gpu.md and gpu.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 300 python benchmarks/gpu_check.py --out benchmarks/results/gpu "$@"
