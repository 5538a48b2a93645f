#!/usr/bin/env bash
# Unpack Debian's labelled image datasets into .cache/datasets/<package>/ without installing
# them (apt-get download + dpkg -x needs no root). Already-unpacked packages are kept.
set -euo pipefail
dest="${LOOKALIKE_DATASETS_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.cache/datasets}"
mkdir -p "$dest"
for pkg in dataset-fashion-mnist tuxpaint-stamps-default; do
  [ -f "$dest/$pkg/.done" ] && continue
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) || {
    [ "$(id -u)" -eq 0 ] && apt-get update -qq && (cd "$tmp" && apt-get download "$pkg" >/dev/null)
  }
  rm -rf "${dest:?}/$pkg" && mkdir -p "$dest/$pkg"
  dpkg -x "$tmp"/"$pkg"_*.deb "$dest/$pkg"
  rm -rf "$tmp"
  touch "$dest/$pkg/.done"
  echo "unpacked $pkg into $dest/$pkg" >&2
done
