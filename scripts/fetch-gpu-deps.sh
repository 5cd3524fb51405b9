#!/usr/bin/env bash
# Run on a networked Debian 12 machine: downloads the Debian packages of dmdbench's non-LibTorch dependencies and
# unpacks them into deps/prefix (no root, no install), so that a GPU host without network and without these
# packages can build against them (scripts/gpu-run.sh finds them through CMAKE_PREFIX_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-deps}
pkgs=(
  libboost-program-options-dev libboost-program-options1.74-dev libboost-program-options1.74.0
  libboost1.74-dev libboost-math1.74-dev libboost-dev
  libfmt-dev libfmt9 libsqlite3-dev libsqlite3-0 libgtest-dev libgmock-dev googletest
  libbenchmark-dev libbenchmark1debian nlohmann-json3-dev libssl-dev libssl3
)
mkdir -p "$dest/debs" "$dest/prefix"
( cd "$dest/debs" && apt-get download "${pkgs[@]}" )
for deb in "$dest"/debs/*.deb; do dpkg -x "$deb" "$dest/prefix"; done
echo "unpacked ${#pkgs[@]} packages into $dest/prefix; copy $dest/ to the GPU host next to the sources"
