#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine with Python 3.11 and pip:
# the EGL/Mesa libraries MuJoCo renders with, uv, and the locked environment in .venv/.
# A second run finds everything in place and takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libglu1-mesa)
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

UV_VERSION=0.13.9
if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION"
  python3 -m pip install --quiet "uv==$UV_VERSION"
fi

# --frozen: install exactly uv.lock, never re-resolve on a user's machine.
uv sync --frozen --quiet --extra full  # the whole framework; the base install is the slim robot-side one
