"""Rebuild lookalike/embedders/calibration/: the images int8 quantization calibrates on.

Usage: python scripts/make_calibration_set.py [--out DIR]

300 images no evaluation set holds: 200 Tux Paint stamps from the folders with fewer than 10 PNGs
(lookalike.eval.datasets.tuxpaint evaluates only folders with 10 or more), flattened on white and
downscaled to a short side of 292 (the model's resize, so nothing is lost) as JPEG, and 100
Fashion-MNIST *train* images, 10 per class (the evaluation uses the test split). Every picked
image's pixels are hashed (sha256) and compared with every image of the Tux Paint evaluation set,
the Fashion-MNIST test split and data/demo; a match is refused. Needs `make datasets`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "lookalike" / "embedders" / "calibration"
N_STAMPS, PER_CLASS, SHORT_SIDE, QUALITY = 200, 10, 292, 88


def pixel_digest(image: Image.Image) -> str:
    rgb = image.convert("RGB")
    return hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


def small_stamps(base: Path, minimum: int) -> list[Path]:
    """PNGs of the stamp folders holding fewer than ``minimum`` of them (left out of the evaluation)."""
    out = []
    for folder in sorted(p for p in base.rglob("*") if p.is_dir()):
        pngs = sorted(f for f in folder.iterdir() if f.suffix.lower() == ".png" and f.is_file())
        if 0 < len(pngs) < minimum:
            out += pngs
    return out


def downscale(image: Image.Image) -> Image.Image:
    scale = SHORT_SIDE / min(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    from lookalike.eval import datasets as ds
    from lookalike.imaging import decode_image
    from lookalike.limits import MAX_IMAGE_PIXELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    datasets_dir = Path(os.environ.get("LOOKALIKE_DATASETS_DIR", ROOT / ".cache" / "datasets"))

    tux = ds.tuxpaint(datasets_dir=datasets_dir)
    test = ds.fashion_mnist("test", datasets_dir=datasets_dir)
    demo = ds.image_folder(ROOT / "data" / "demo", min_per_class=1)
    evaluated = set()
    for dataset in (tux, test, demo):
        evaluated.update(pixel_digest(dataset.image(i)) for i in range(len(dataset)))

    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.jpg"):
        old.unlink()
    for old in args.out.glob("*.png"):
        old.unlink()
    sources = {}
    base = tux.paths[0].parent
    while base.name != "stamps":
        base = base.parent
    candidates = small_stamps(base, ds.TUXPAINT_MIN_PER_CLASS)
    picked = [candidates[int(i)] for i in np.linspace(0, len(candidates) - 1, N_STAMPS).round()]
    for n, path in enumerate(dict.fromkeys(picked)):
        image = decode_image(path.read_bytes(), max_pixels=MAX_IMAGE_PIXELS)
        small = downscale(image)
        if pixel_digest(image) in evaluated or pixel_digest(small) in evaluated:
            raise SystemExit(f"{path} is in an evaluation set")
        name = f"stamp-{n:03d}.jpg"
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=QUALITY, optimize=True)
        (args.out / name).write_bytes(buffer.getvalue())
        sources[name] = "tuxpaint-stamps-default: " + path.relative_to(base).as_posix()

    train = ds.fashion_mnist("train", datasets_dir=datasets_dir)
    rng = np.random.default_rng(0)
    labels = np.asarray(train.labels, dtype=object)
    for c, label in enumerate(ds.FASHION_MNIST_CLASSES):
        taken = 0
        for i in rng.permutation(np.flatnonzero(labels == label)):
            image = train.image(int(i))
            if pixel_digest(image) in evaluated:
                continue  # the same picture in the train and test splits
            name = f"fashion-{c}-{taken}.png"
            Image.fromarray(np.asarray(image)[:, :, 0]).save(args.out / name, optimize=True)
            sources[name] = f"dataset-fashion-mnist: train image {int(i)} ({label})"
            taken += 1
            if taken == PER_CLASS:
                break
    (args.out / "sources.json").write_text(json.dumps(sources, indent=1, sort_keys=True) + "\n")
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{len(sources)} images in {args.out} ({size / 1e6:.2f} MB); none of their pixels is in "
          f"{len(evaluated)} evaluation images (Tux Paint eval, Fashion-MNIST test, data/demo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
