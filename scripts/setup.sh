#!/usr/bin/env bash
# Set-up on a fresh Debian 12 (bookworm) machine: installs every system dependency with apt-get,
# then configures and builds r1kit into ./build (Release; CUDA when nvcc is on PATH).
# Usage: scripts/setup.sh [--no-install] [--build-dir DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."

install=1
build_dir=build
cmake_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-install) install=0 ;;
    --build-dir) build_dir="$2"; shift ;;
    *) cmake_args+=("$1") ;;
  esac
  shift
done

# The packages, one group per use. Later features add theirs here (one place for all of them).
packages=(
  build-essential cmake ninja-build pkg-config git   # toolchain
  libopenblas-dev                                      # CPU GEMM for the reference kernels
  nlohmann-json3-dev libspdlog-dev libfmt-dev          # JSON, logging
  libcli11-dev                                         # command line
  libboost-dev                                         # Boost (process, for the sandbox)
  libseccomp-dev zlib1g-dev                            # sandbox: seccomp filters, gzip'd datasets
  libre2-dev libutf8proc-dev libsentencepiece-dev      # tokenizers: regexes, Unicode, SentencePiece
  libginac-dev libcln-dev libicu-dev                   # rewards: computer algebra (GiNaC on CLN), Unicode scripts
  libgtest-dev                                         # tests
  chromium                                             # tests: the run report drawn headless
  clang libclang-rt-14-dev                             # libFuzzer target (optional, tests/fuzz)
)

if [ "$install" = 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: all system packages present"
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}"
cmake --build "$build_dir" -j "$jobs"
echo "setup: built $build_dir/apps/r1kit"
