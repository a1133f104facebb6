#!/usr/bin/env bash
# Downloads the Debian packages an offline GPU host may lack (RE2, utf8proc, SentencePiece, libseccomp, zlib, GiNaC/CLN, ICU headers) into .debs/ (ignored by
# git), for scripts/gpu-check.sh to unpack there with dpkg -x. Run on a Debian machine with network.
# Usage: scripts/fetch-gpu-debs.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.debs}"
mkdir -p "$dir"
cd "$dir"
apt-get download libre2-9 libre2-dev libutf8proc2 libutf8proc-dev libsentencepiece0 libsentencepiece-dev libseccomp2 libseccomp-dev zlib1g zlib1g-dev libginac11 libginac-dev libcln6 libcln-dev libicu72 libicu-dev
ls -1 "$PWD"/*.deb
