#!/usr/bin/env bash
# The GPU checks, as one script for a machine with a CUDA device (run from the repository root):
# the Triton kernels against the eager reference, then the step, generation and temperature
# figures on CUDA. Needs a CUDA build of torch with triton (pip install torch triton) and the
# package (pip install -e .). Writes the figures into benchmarks/RESULTS.md and copies them to
# $OUT when that is set.
set -euo pipefail
python -m pytest -q -m gpu tests/kan/test_triton_kernels.py
python benchmarks/baseline_step.py --device cuda
python benchmarks/generation.py --device cuda
python benchmarks/temperatures.py --device cuda --batch 100 --steps 40
if [ -n "${OUT:-}" ]; then cp benchmarks/RESULTS.md "$OUT/"; fi
