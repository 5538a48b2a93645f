#!/usr/bin/env bash
# Replace Pillow in a virtualenv by Pillow-SIMD built for AVX2, where the CPU has AVX2 and it is asked for.
#
#   PILLOW_SIMD=1 bash scripts/pillow_simd.sh .venv     (make venv PILLOW_SIMD=1; unset or 0 keeps Pillow)
#
# Pillow-SIMD is Pillow with SIMD resampling and alpha blending (https://github.com/uploadcare/pillow-simd):
# a bicubic resize of a demo stamp to 260 px in 0.25 ms instead of 1.2, and demo ingest with the
# int8 model 1.10-1.14x (paired fresh-process runs, docs/BENCHMARKS.md). Its pixels differ from
# Pillow's by rounding (mostly +-1), so the model fingerprint names it (lookalike.embedders.preprocess).
# Not the default: the SageMaker container, the Lambda and `pip install lookalike` run Pillow, so
# with it a local index is no longer bit-for-bit the cloud's (cosine >= 0.9995, but neighbours
# near a tie may swap), and `lookalike push` would put its vectors beside the endpoint's.
# It ships as source only: the wheel is built once into .cache/wheels with the CPU's AVX2 enabled,
# against the Debian libraries scripts/system_deps.sh installs (libjpeg, zlib, libwebp, libtiff).
set -euo pipefail
VENV=${1:?usage: pillow_simd.sh VENV}
VERSION=12.1.1.post0
WHEELS=.cache/wheels
PY="$VENV/bin/python"

if [ "${PILLOW_SIMD:-0}" != "1" ]; then
  exit 0  # Pillow, the default
fi
if [ "$(uname -m)" != "x86_64" ] || ! grep -qw avx2 /proc/cpuinfo; then
  echo "no AVX2 here: keeping Pillow" >&2; exit 0
fi
if [ "$("$PY" -c 'import PIL; print(PIL.__version__)')" = "$VERSION" ]; then
  exit 0
fi
bash scripts/system_deps.sh --pillow-build || { echo "cannot install the libraries to build Pillow-SIMD: keeping Pillow" >&2; exit 0; }
wheel=$(ls "$WHEELS"/pillow_simd-"$VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
  echo "building Pillow-SIMD $VERSION for AVX2 (about 1.5 minutes, once)" >&2
  mkdir -p "$WHEELS"
  # -mavx2 turns on the AVX2 paths (without it Pillow-SIMD builds SSE4 only).
  if ! CC="cc -mavx2" "$VENV/bin/pip" wheel -q --no-deps --no-binary pillow-simd -w "$WHEELS" "pillow-simd==$VERSION"; then
    echo "Pillow-SIMD did not build: keeping Pillow (same results, slower resizing)" >&2; exit 0
  fi
  wheel=$(ls "$WHEELS"/pillow_simd-"$VERSION"-*.whl | head -1)
fi
# Both distributions install the PIL package: remove Pillow's files first, then install the wheel
# without dependencies (pip still lists Pillow as a requirement of matplotlib, which imports PIL
# and runs on Pillow-SIMD unchanged).
"$VENV/bin/pip" uninstall -q -y pillow
"$VENV/bin/pip" install -q --no-deps --force-reinstall "$wheel"
# A build without these would refuse images lookalike promises to read: put Pillow back.
if ! "$PY" -c 'from PIL import features; import sys; sys.exit(not all(features.check(f) for f in ("jpg", "zlib", "webp", "libtiff")))'; then
  echo "Pillow-SIMD was built without JPEG, zlib, WebP or libtiff: back to Pillow" >&2
  rm -f "$wheel"
  "$VENV/bin/pip" uninstall -q -y pillow-simd
  "$VENV/bin/pip" install -q pillow
fi
