#!/usr/bin/env bash
# Installs the Debian 12 packages dmdbench needs. Idempotent: does nothing when they are already present.
set -euo pipefail
packages=(
  build-essential cmake ninja-build git pkg-config
  libtorch-dev libopenblas0-pthread          # LibTorch 1.13 (CPU); OpenBLAS makes its matrix products ~10x faster
  libbenchmark-dev libboost-program-options-dev libboost-math-dev
  libsqlite3-dev sqlite3 libfmt-dev libgtest-dev nlohmann-json3-dev libssl-dev
  gnuplot-nox                                # report figures (SVG)
  python3-numpy                              # regenerating test fixtures only
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
