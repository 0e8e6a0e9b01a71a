#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go: the GPU tests, then the full benchmark against
# cuDNN (`python -m tconv_lib.bench --device cuda`). Run on a machine with CUDA and the project's
# Python packages (and Triton, for the depthwise kernel):
#
#   bash scripts/gpu_check.sh [OUTDIR]        # OUTDIR defaults to benchmarks/results
#
# It writes the benchmark's JSON and PNG, the test log and the device facts into OUTDIR.
set -uo pipefail
case "${1-}" in
  -h|--help) echo "usage: bash scripts/gpu_check.sh [OUTDIR]   (what \`make bench-gpu\` runs)"
             sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
  -*) echo "gpu_check: OUTDIR must be a folder, not an option; got '$1'" >&2
      echo "usage: bash scripts/gpu_check.sh [OUTDIR]" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
OUTDIR=${1:-benchmarks/results}
REPS=${REPS:-15}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1

"$PY" - <<'PYEOF' | tee "$OUTDIR/gpu-facts.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
try:
    import triton
    print("triton", triton.__version__)
except ImportError:
    print("triton missing: the depthwise kernel is not offered")
PYEOF

status=0
label=$("$PY" -c "from tconv_lib.bench import device_label; print(device_label('cuda', 'torch', 0, False))")
timeout "${BENCH_TIMEOUT:-300}" "$PY" -m tconv_lib.bench --device cuda --reps "$REPS" \
    --no-progress --out "$OUTDIR/$label.json" || status=$?
timeout "${TEST_TIMEOUT:-240}" "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py \
    tests/test_gpu_routes.py 2>&1 | tail -40 | tee "$OUTDIR/gpu-tests.log" || status=$?
exit $status
