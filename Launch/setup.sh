#!/usr/bin/env bash
# Installs the Debian packages GrokCluster needs, when missing: OpenMPI, OpenBLAS, zstd, and NumPy
# for the test oracle. Needs root (or sudo) only when something is missing.
set -euo pipefail
packages=(libopenmpi-dev openmpi-bin libopenblas-dev libzstd-dev pkg-config python3 python3-numpy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6 toolchain needed)" >&2; exit 1; }
