#!/usr/bin/env bash
# GPU check: compiled Triton kernel tests + the GPU rows of the kernel, sampler and RL-step
# benchmarks, written as one table to docs/results/gpu_check_<date>.md.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on an NVIDIA GPU machine
#
# STATUS: NOT YET RUN ON A GPU. It was written in a session that had no GPU. There, only
# these paths ran: the no-GPU exit (status 2, in well under a second), the exit when the
# install fails, and `benchmarks/gpu_check.py --smoke` on CPU. Commit the table it writes
# the first time it runs on a GPU machine.
#
# Steps:
#   1. Stops at once (status 2) unless `nvidia-smi -L` lists a GPU.
#   2. Makes or reuses a venv ($GPU_VENV, default .venv-gpu) and installs this project with
#      its test extra and a CUDA jax: pip install -U -e ".[test]" "jax[$JAX_CUDA_EXTRA]"
#      (JAX_CUDA_EXTRA defaults to cuda12; use cuda13 for a CUDA-13-only driver). A GPU box
#      with no network except its package index is enough. A failed install stops the
#      script (status 3) and points to its log. Has its own limit, INSTALL_TIMEOUT (900 s),
#      and is not counted in the 8 minutes below, because its length depends on the index.
#   3. Stops (status 4) unless jax's first device is a GPU.
#   4. Kernel tests, compiled (interpret=False):
#      tests/kernels_pallas/test_fused_gpu_compiled.py with JAXRL_REQUIRE_GPU=1, so a missing
#      GPU fails instead of skipping, plus the Triton lowering tests. Limit 180 s. Status 5 on
#      failure.
#   5. benchmarks/gpu_check.py: the kernel (fused_logprob.py, impl=gpu vs xla vs naive),
#      sampler (sampling.generate on the sampler_vs_hf models) and GRPO-step
#      (rl_step_vs_trl workload) GPU rows. Limit 300 s. Status 6 on failure or timeout.
# Steps 4 and 5 together take at most 480 s (8 minutes) by their limits.
#
# Environment: GPU_VENV, PYTHON (the interpreter that makes the venv; needs >= 3.11),
# JAX_CUDA_EXTRA, INSTALL_TIMEOUT, GPU_CHECK_OUT (output file), NVIDIA_SMI (the command,
# default nvidia-smi).

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
START=$SECONDS
die() { local code=$1; shift; echo "gpu_check.sh: ERROR: $*" >&2; exit "$code"; }
say() { echo "gpu_check.sh: [$((SECONDS - START)) s] $*"; }

# ---- 1. an NVIDIA GPU? (before anything slow)
NVIDIA_SMI="${NVIDIA_SMI:-nvidia-smi}"
command -v "$NVIDIA_SMI" >/dev/null 2>&1 \
  || die 2 "no NVIDIA GPU: '$NVIDIA_SMI' not found. Run this on a machine with an NVIDIA GPU and driver."
GPUS="$(timeout 60 "$NVIDIA_SMI" -L 2>&1)" \
  || die 2 "no usable NVIDIA GPU: '$NVIDIA_SMI -L' failed: $GPUS"
grep -q '^GPU [0-9]' <<<"$GPUS" || die 2 "no NVIDIA GPU: '$NVIDIA_SMI -L' lists none: $GPUS"
say "found: $(head -n1 <<<"$GPUS")"

# ---- 2. venv with the project and a CUDA jax
GPU_VENV="${GPU_VENV:-$ROOT/.venv-gpu}"
JAX_CUDA_EXTRA="${JAX_CUDA_EXTRA:-cuda12}"
INSTALL_TIMEOUT="${INSTALL_TIMEOUT:-900}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
mkdir -p "$GPU_VENV"
LOG="$GPU_VENV/install.log"
if [ ! -x "$GPU_VENV/bin/python" ]; then
  "$PYTHON" -m venv "$GPU_VENV" >"$LOG" 2>&1 || die 3 "could not create the venv $GPU_VENV with $PYTHON (see $LOG)"
fi
PY="$GPU_VENV/bin/python"
say "installing the project and jax[$JAX_CUDA_EXTRA] into $GPU_VENV (log: $LOG) ..."
if ! timeout "$INSTALL_TIMEOUT" "$PY" -m pip install -U -e ".[test]" "jax[$JAX_CUDA_EXTRA]" >>"$LOG" 2>&1; then
  tail -n 15 "$LOG" >&2
  die 3 "installing a CUDA jax failed (pip install -U -e '.[test]' 'jax[$JAX_CUDA_EXTRA]'; timeout ${INSTALL_TIMEOUT} s). Does the machine reach its package index? Full log: $LOG"
fi
INSTALLED=$SECONDS
say "install done ($((INSTALLED - START)) s)"

# ---- 3. does jax see the GPU?
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # several processes share the GPU one after another
"$PY" -c "import jax, sys; d = jax.devices(); print('jax', jax.__version__, d); sys.exit(d[0].platform != 'gpu')" \
  || die 4 "jax does not see the GPU (driver too old for jax[$JAX_CUDA_EXTRA]? try JAX_CUDA_EXTRA=cuda13 or cuda12)"

# ---- 4. compiled Triton kernel tests
TEST_LOG="$GPU_VENV/kernel_tests.log"
say "kernel tests (compiled Triton) ..."
JAXRL_REQUIRE_GPU=1 timeout 180 "$PY" -m pytest -q -p no:cacheprovider -rs \
  tests/kernels_pallas/test_fused_gpu_compiled.py tests/kernels_pallas/test_fused_lowering.py \
  2>&1 | tee "$TEST_LOG"
TEST_RC=${PIPESTATUS[0]}
SUMMARY="$(grep -E '(passed|failed|error)' "$TEST_LOG" | tail -n1 | sed 's/=//g; s/^ *//; s/ *$//')"
[ "$TEST_RC" -eq 0 ] || die 5 "compiled kernel tests failed (rc $TEST_RC): $SUMMARY (log: $TEST_LOG)"
grep -q skipped <<<"$SUMMARY" && die 5 "compiled kernel tests skipped something: $SUMMARY"

# ---- 5. GPU benchmark rows
OUT="${GPU_CHECK_OUT:-docs/results/gpu_check_$(date -u +%F).md}"
say "benchmarks -> $OUT ..."
timeout 300 "$PY" benchmarks/gpu_check.py --out "$OUT" --tests "$SUMMARY" \
  || die 6 "benchmarks/gpu_check.py failed or passed its 300 s limit (rc $?); what it wrote is in $OUT"
say "done: tests + benchmarks $((SECONDS - INSTALLED)) s (budget 480 s), install $((INSTALLED - START)) s; table in $OUT"
