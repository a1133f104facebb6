#!/usr/bin/env bash
# Runs the test suites. Default: builds ./build if needed and runs every CPU test with ctest.
#   scripts/test.sh              unit tests (ctest -L cpu) in ./build
#   scripts/test.sh --sanitize   the same tests built with AddressSanitizer + UBSan in ./build-asan
#   scripts/test.sh --gpu        only the GPU-labelled tests (on a machine with a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=default
[ $# -gt 0 ] && mode="$1"
jobs=$(nproc 2>/dev/null || echo 2)

case "$mode" in
  default)
    [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
    cmake --build build -j "$jobs"
    ctest --test-dir build -L cpu --output-on-failure -j "$jobs"
    ;;
  --sanitize)
    # CUDA stays off here: the sanitizers instrument host code only and cudart dislikes ASan.
    # -O1 -g1 (line tables): what the sanitizers' documentation recommends, and half the compile
    # time of -O2 -g.
    [ -f build-asan/build.ninja ] || cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
      -DR1KIT_SANITIZE=ON -DR1KIT_CUDA=OFF -DR1KIT_BUILD_BENCH=OFF
    cmake --build build-asan -j "$jobs"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp":print_suppressions=0 \
      ctest --test-dir build-asan -L cpu --output-on-failure -j "$jobs"
    ;;
  --gpu)
    [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
    cmake --build build -j "$jobs"
    ctest --test-dir build -L gpu --output-on-failure
    ;;
  *)
    echo "usage: scripts/test.sh [--sanitize|--gpu]" >&2
    exit 2
    ;;
esac
