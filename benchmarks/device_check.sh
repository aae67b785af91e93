#!/usr/bin/env bash
# The GPU checks of llamass, in one run on a CUDA machine (the `device` tool's H100/H200):
#   CUDA-only tests, the pinning check, then the GPU benchmark table. Output files go to $OUT (or ./device_out).
# Needs roma as a wheel in .whl/ where it is not installed, and (optional) benchmarks/out/original (llamass 0.0.4)
# and benchmarks/out/amass_lens_real.json.gz (real AMASS sequence lengths) for the benchmark.
set -o pipefail
OUT=${OUT:-device_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else export PYTHONPATH=$PWD; fi
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout 150 python3 -m pytest -q -p no:cacheprovider -x -k "cuda or pin or gpu" tests/test_device.py \
  tests/test_engine_contract.py tests/test_compat_004.py 2>&1 | tail -n 15 | tee "$OUT/gpu_tests.txt"
timeout 90 python3 benchmarks/pin_check.py 2>&1 | grep -v Warning | tee "$OUT/pin_check.txt"
original=(); [ -d benchmarks/out/original ] && original=(--original benchmarks/out/original)
lens=(); [ -f benchmarks/out/amass_lens_real.json.gz ] && lens=(--lens benchmarks/out/amass_lens_real.json.gz)
PYTHONUNBUFFERED=1 timeout ${BENCH_SECONDS:-330} python3 benchmarks/bench_gpu.py --seconds 1 --warmup 0.5 "${original[@]}" "${lens[@]}" \
  ${BENCH_ARGS:-} --out "$OUT/gpu_table.md" 2>&1 | tee "$OUT/bench_log.txt"
