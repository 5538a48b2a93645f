"""Rebuild data/demo/ from the Debian package tuxpaint-stamps-default (GPL-2).

Usage: python scripts/make_demo_collection.py [STAMPS_ROOT] [OUT]
STAMPS_ROOT defaults to /usr/share/tuxpaint/stamps, or is unpacked from the .deb with
`apt-get download` + `dpkg -x` (no root install needed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# demo class -> stamp folder (only the files directly in it). Photo-like classes only.
CLASSES = {
    "birds": "animals/birds",
    "bovids": "animals/mammals/bovines",
    "fish": "animals/fish",
    "flowers": "plants/flowers",
    "fruit": "food/fruit",
    "mammals": "animals/mammals",
    "planets": "space/planets",
    "roadsigns": "town/roadsigns",
    "tools": "household/tools",
    "vegetables": "food/vegetables",
}


def stamps_root() -> Path:
    system = Path("/usr/share/tuxpaint/stamps")
    if system.is_dir():
        return system
    tmp = Path(tempfile.mkdtemp(prefix="tuxpaint-"))
    subprocess.run(["apt-get", "download", "tuxpaint-stamps-default"], cwd=tmp, check=True)
    deb = next(tmp.glob("tuxpaint-stamps-default_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(tmp / "root")], check=True)
    return tmp / "root/usr/share/tuxpaint/stamps"


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else stamps_root()
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent.parent / "data/demo"
    total = 0
    for label, folder in CLASSES.items():
        target = out / label
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for png in sorted((root / folder).glob("*.png")):
            if "_thumb" in png.name:
                continue
            shutil.copy2(png, target / png.name)
            total += 1
    copyright_file = root.parent.parent / "doc/tuxpaint-stamps-default/copyright"
    if copyright_file.is_file():
        shutil.copy2(copyright_file, out / "COPYRIGHT.debian")
    print(f"{total} images in {len(CLASSES)} classes under {out}")


if __name__ == "__main__":
    main()
