#!/usr/bin/env bash
# One call on an offline GPU host: configure for the host's GPU, build, run the GPU-labelled tests
# (and the CPU suite as a cross-check), run the kernel benchmarks on CPU and GPU, and write logs
# and JSON results into RESULTS_DIR.
# Usage: scripts/gpu-check.sh RESULTS_DIR [CUDA_ARCHITECTURES (default 90a)]
# Needs: cmake, ninja or make, nvcc, and the -dev packages scripts/setup.sh lists (no network).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/gpu-check.sh RESULTS_DIR [CUDA_ARCHITECTURES]}"
arch="${2:-90a}"
mkdir -p "$out"
build=build-gpu
jobs=$(nproc 2>/dev/null || echo 8)
gen=(-G Ninja)
command -v ninja >/dev/null || gen=()

status=0
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  nvcc --version | tail -1
} > "$out/machine.txt" 2>&1

if ! cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DR1KIT_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" > "$out/configure.log" 2>&1; then
  echo "gpu-check: configure failed (see configure.log)"; tail -20 "$out/configure.log"; exit 1
fi
if ! cmake --build "$build" -j "$jobs" > "$out/build.log" 2>&1; then
  echo "gpu-check: build failed (see build.log)"; grep -E 'error' "$out/build.log" | head -20; exit 1
fi
"$build/apps/r1kit" info | tee "$out/info.txt"

ctest --test-dir "$build" -L gpu --output-on-failure > "$out/gpu_tests.log" 2>&1 || status=1
tail -4 "$out/gpu_tests.log"
ctest --test-dir "$build" -L cpu -j "$jobs" --output-on-failure > "$out/cpu_tests.log" 2>&1 || status=1
tail -3 "$out/cpu_tests.log"

"$build/bench/kernels_bench" --device cpu > "$out/bench_cpu.jsonl" 2> "$out/bench_cpu.err" || status=1
"$build/bench/kernels_bench" --device cuda > "$out/bench_cuda.jsonl" 2> "$out/bench_cuda.err" || status=1
echo "gpu-check: results in $out (status $status)"
exit $status
