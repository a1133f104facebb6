#!/usr/bin/env bash
# One call on an offline GPU host: install RE2 from local Debian package files when the host lacks
# it, configure for the host's GPU, build, run the GPU-labelled tests (and, unless --gpu-only, the
# CPU suite as a cross-check), run the kernel and GEMM benchmarks, and write logs and JSON results
# into RESULTS_DIR (at most 8 files, so a results folder can be shipped back whole).
#
# Usage: scripts/gpu-check.sh [--gpu-only] [--filter GTEST_FILTER] [--no-bench] [--bench LIST]
#                             RESULTS_DIR [ARCH]
#   ARCH: CMAKE_CUDA_ARCHITECTURES (default 90a: the H200's Hopper target)
#   --gpu-only  skip the CPU test suite and the CPU benchmark (saves device time)
#   --filter F  run only GPU tests whose ctest name matches the regex F
#   --no-bench  tests only
#   --bench L   the benchmarks to run, comma-separated: kernels, gemm, rollout, sft, grpo (default
#               kernels,gemm). rollout: `r1kit init` writes random bf16 checkpoints in the shapes
#               of Qwen2.5-0.5B and dsv3-mini under /tmp, then bench/rollout_bench and, where
#               python3 has torch and transformers, bench/hf_generate.py run on each.
# Environment: R1KIT_HF=0 skips hf_generate.py; R1KIT_TEST_TIMEOUT, R1KIT_BENCH_TIMEOUT,
#   R1KIT_HF_TIMEOUT (seconds per test, per
#   benchmark binary, per hf_generate.py run); R1KIT_DEBS, a folder of .deb files (default .debs/, filled by
#   scripts/fetch-gpu-debs.sh on a machine with network): unpacked with dpkg -x into the build folder
#   when the host lacks the RE2, utf8proc or SentencePiece headers, and put on the compiler/CMake
#   search paths.
# Results: summary.txt (machine, versions, test totals), build.log, gpu_tests.log, gpu_tests.xml
#   (JUnit), cpu_tests.log, bench_cuda.jsonl, bench_gemm.jsonl, bench_cpu.jsonl,
#   bench_rollout.jsonl, bench_sft.jsonl, bench_grpo.jsonl (8 files at most, so that --gpu-only runs leave room for all benchmarks).
set -uo pipefail
cd "$(dirname "$0")/.."

gpu_only=0
bench=1
filter=""
benches=kernels,gemm
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu-only) gpu_only=1 ;;
    --no-bench) bench=0 ;;
    --filter) filter="$2"; shift ;;
    --bench) benches="$2"; shift ;;
    -*) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
out="${1:?usage: scripts/gpu-check.sh [--gpu-only] [--filter F] [--no-bench] RESULTS_DIR [ARCH]}"
arch="${2:-90a}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
build=build-gpu
jobs=$(nproc 2>/dev/null || echo 8)
gen=(-G Ninja)
command -v ninja >/dev/null || gen=()
summary="$out/summary.txt"
status=0

{
  echo "== machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
  nvcc --version | tail -1
  cmake --version | head -1
  echo "cores: $jobs"
} > "$summary" 2>&1

# --- RE2 (and the other tokenizer libraries) from local .deb files when the host lacks them -----
extra=()
missing_hdr=0
for h in re2/re2.h utf8proc.h sentencepiece_processor.h seccomp.h zlib.h ginac/ginac.h cln/cln.h unicode/uscript.h; do
  [ -f "/usr/include/$h" ] || missing_hdr=1
done
if [ "$missing_hdr" = 1 ]; then
  debs="${R1KIT_DEBS:-.debs}"
  if ls "$debs"/libre2*.deb >/dev/null 2>&1; then
    root="$PWD/$build/deps-root"
    mkdir -p "$root"
    for f in "$debs"/*.deb; do dpkg -x "$f" "$root"; done
    libdir="$root/usr/lib/x86_64-linux-gnu"
    # The packages' .pc files say prefix=/usr: point them at the unpacked tree.
    for pc in "$libdir"/pkgconfig/*.pc; do
      sed -i -E "s#^(prefix|exec_prefix|libdir|includedir)=/usr#\1=$root/usr#" "$pc"
    done
    export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export CPATH="$root/usr/include${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$libdir${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    extra+=(-DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_LIBRARY_PATH="$libdir")
    echo "RE2: unpacked $(ls "$debs"/*.deb | xargs -n1 basename | tr '\n' ' ')into $root" >> "$summary"
    for h in re2/re2.h utf8proc.h sentencepiece_processor.h seccomp.h zlib.h ginac/ginac.h cln/cln.h unicode/uscript.h; do
      [ -f "/usr/include/$h" ] || [ -f "$root/usr/include/$h" ] ||
        { echo "gpu-check: $h missing after unpacking $debs" | tee -a "$summary"; exit 1; }
    done
  else
    echo "gpu-check: the host lacks RE2/utf8proc/SentencePiece headers and $debs holds no libre2*.deb (run scripts/fetch-gpu-debs.sh where there is network)" | tee -a "$summary"
    exit 1
  fi
else
  echo "RE2, utf8proc, SentencePiece: host packages" >> "$summary"
fi

# --- configure and build ------------------------------------------------------------------------
if ! cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DR1KIT_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" "${extra[@]}" > "$out/build.log" 2>&1; then
  echo "gpu-check: configure failed (see build.log)"; tail -20 "$out/build.log"; exit 1
fi
t0=$(date +%s)
targets=()
# --gpu-only builds what it runs: the GPU suite and the two benchmarks.
[ "$gpu_only" = 1 ] && targets=(--target gpu_tests kernels_bench gemm_bench rollout_bench sft_bench grpo_bench r1kit)
if ! cmake --build "$build" -j "$jobs" "${targets[@]}" >> "$out/build.log" 2>&1; then
  echo "gpu-check: build failed (see build.log)"; grep -E 'error|FAILED' "$out/build.log" | head -30; exit 1
fi
echo "build: $(( $(date +%s) - t0 )) s" >> "$summary"
[ -x "$build/apps/r1kit" ] && "$build/apps/r1kit" info >> "$summary" 2>&1

# --- tests ----------------------------------------------------------------------------------------
ctest_filter=()
[ -n "$filter" ] && ctest_filter=(-R "$filter")
ctest --test-dir "$build" -L gpu "${ctest_filter[@]}" --output-on-failure --timeout "${R1KIT_TEST_TIMEOUT:-600}" \
  --output-junit "$out/gpu_tests.xml" > "$out/gpu_tests.log" 2>&1 || status=1
{ echo "== gpu tests"; grep -E "tests passed|tests failed|\(Failed\)|\(SEGFAULT\)|\(Timeout\)|Exception" "$out/gpu_tests.log" | head -60; } >> "$summary"
if [ "$gpu_only" = 0 ]; then
  ctest --test-dir "$build" -L cpu -j "$jobs" --output-on-failure > "$out/cpu_tests.log" 2>&1 || status=1
  { echo "== cpu tests"; grep -E "tests passed|tests failed|\(Failed\)" "$out/cpu_tests.log" | head -20; } >> "$summary"
fi

# --- benchmarks ---------------------------------------------------------------------------------
wants() { case ",$benches," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
if [ "$bench" = 1 ]; then
  if wants kernels; then
    timeout "${R1KIT_BENCH_TIMEOUT:-240}" "$build/bench/kernels_bench" --device cuda \
      > "$out/bench_cuda.jsonl" 2>> "$summary" || status=1
  fi
  if wants gemm; then
    timeout "${R1KIT_BENCH_TIMEOUT:-240}" "$build/bench/gemm_bench" > "$out/bench_gemm.jsonl" 2>> "$summary" || status=1
  fi
  if wants rollout; then
    hf=0
    [ "${R1KIT_HF:-1}" = 1 ] && python3 -c 'import torch, transformers' 2>/dev/null && hf=1
    for spec in qwen2:qwen2.5-0.5b deepseek_v3:dsv3-mini; do
      arch="${spec%%:*}" preset="${spec#*:}" dir="/tmp/r1kit-bench/$preset"
      echo "== rollout $preset" >> "$summary"
      t1=$(date +%s)
      "$build/apps/r1kit" init --arch "$arch" --preset "$preset" --out "$dir" --dtype bf16 \
        --overwrite > /dev/null 2>> "$summary" || { status=1; continue; }
      echo "init: $(( $(date +%s) - t1 )) s" >> "$summary"
      timeout "${R1KIT_BENCH_TIMEOUT:-300}" "$build/bench/rollout_bench" --model "$dir" \
        >> "$out/bench_rollout.jsonl" 2>> "$summary" || status=1
      if [ "$hf" = 1 ]; then
        PYTHONUNBUFFERED=1 timeout "${R1KIT_HF_TIMEOUT:-300}" python3 bench/hf_generate.py \
          --model "$dir" >> "$out/bench_rollout.jsonl" 2> /tmp/r1kit-hf.err ||
          { status=1; echo "hf_generate failed or timed out (R1KIT_HF_TIMEOUT):"; tail -5 /tmp/r1kit-hf.err; } >> "$summary"
      fi
      rm -rf "$dir"
    done
  fi
  if wants sft; then
    # SFT optimizer steps (bf16, random weights): 32 rows of 1024 tokens per step; dsv3-mini
    # (4.6B parameters: 74 GB of weights, masters, moments and gradients) with recompute.
    for spec in "qwen2 qwen2.5-0.5b" "qwen2 qwen2.5-1.5b" "deepseek_v3 dsv3-mini --recompute"; do
      read -r arch preset flags <<< "$spec"
      echo "== sft $preset" >> "$summary"
      timeout "${R1KIT_BENCH_TIMEOUT:-300}" "$build/bench/sft_bench" --arch "$arch" \
        --preset "$preset" $flags >> "$out/bench_sft.jsonl" 2>> "$summary" || status=1
    done
  fi
  if wants grpo; then
    # GRPO steps (bf16, random weights): 16 prompts x 8 samples x 256 new tokens, one update.
    for spec in "qwen2 qwen2.5-0.5b" "deepseek_v3 dsv3-mini --recompute"; do
      read -r arch preset flags <<< "$spec"
      echo "== grpo $preset" >> "$summary"
      timeout "${R1KIT_BENCH_TIMEOUT:-300}" "$build/bench/grpo_bench" --arch "$arch" \
        --preset "$preset" $flags >> "$out/bench_grpo.jsonl" 2>> "$summary" || status=1
    done
  fi
  if [ "$gpu_only" = 0 ]; then
    "$build/bench/kernels_bench" --device cpu > "$out/bench_cpu.jsonl" 2>> "$summary" || status=1
  fi
fi
echo "gpu-check: results in $out (status $status)" | tee -a "$summary"
tail -40 "$summary"
exit $status
