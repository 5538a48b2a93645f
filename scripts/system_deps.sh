#!/usr/bin/env bash
# Install the Debian packages the test suite needs, if they are missing.
set -euo pipefail
#   bash scripts/system_deps.sh                 what the tests need (Chromium for browser tests)
#   bash scripts/system_deps.sh --pillow-build  the libraries Pillow-SIMD is built against
need=()
if [ "${1:-}" = "--pillow-build" ]; then
  for pkg in libjpeg-dev zlib1g-dev libwebp-dev libtiff-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
else
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing ${need[*]} with apt-get" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
