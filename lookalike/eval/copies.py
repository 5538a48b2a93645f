"""Edited copies of images, for copy detection and for calibrating the duplicate threshold.

The edits are the ones near-duplicate tools meet in photo collections: a crop keeping 50-90%
of the area, a resize (0.5-1.5x), JPEG re-compression (quality 30-90), a horizontal flip,
a colour change (brightness/contrast/saturation 0.7-1.3), a small rotation (up to 10 degrees)
and a text or logo overlay. ``edit(image, kind, rng)`` applies one family; ``"mixed"`` chains
several at random, like a copy that went through a few apps. Deterministic for a seeded
``random.Random``.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageEnhance, ImageFont

KINDS = ("crop", "resize", "jpeg", "flip", "colour", "rotate", "overlay", "mixed")
WORDS = ("SALE", "(c) 2026", "sample", "www.example.com", "DEMO", "#1", "photo")


def _crop(im, rng):
    area, aspect = rng.uniform(0.5, 0.9), rng.uniform(3 / 4, 4 / 3)
    w = min(im.width, max(8, round((area * im.width * im.height * aspect) ** 0.5)))
    h = min(im.height, max(8, round((area * im.width * im.height / aspect) ** 0.5)))
    x, y = rng.randint(0, im.width - w), rng.randint(0, im.height - h)
    return im.crop((x, y, x + w, y + h))


def _resize(im, rng):
    f = rng.uniform(0.5, 1.5)
    return im.resize((max(16, round(im.width * f)), max(16, round(im.height * f))), Image.Resampling.BILINEAR)


def _jpeg(im, rng):
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=rng.randint(30, 90))
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _colour(im, rng):
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        im = enhancer(im).enhance(rng.uniform(0.7, 1.3))
    return im


def _rotate(im, rng):
    return im.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR, fillcolor=(255, 255, 255))


def _overlay(im, rng):
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    colour = tuple(rng.randint(0, 255) for _ in range(3))
    size = max(8, round(min(im.size) * rng.uniform(0.1, 0.2)))
    x, y = rng.randint(0, max(0, im.width - 2 * size)), rng.randint(0, max(0, im.height - size))
    if rng.random() < 0.6:
        draw.text((x, y), rng.choice(WORDS), font=ImageFont.load_default(size=size), fill=colour + (220,))
    else:
        draw.ellipse((x, y, x + size, y + size), fill=colour + (190,))
    return Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")


EDITS = {"crop": _crop, "resize": _resize, "jpeg": _jpeg, "flip": lambda im, rng: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
         "colour": _colour, "rotate": _rotate, "overlay": _overlay}


def edit(image: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """An edited copy of an RGB image: one edit family of :data:`KINDS`, or ``"mixed"``."""
    if kind == "mixed":
        kinds = [k for k in ("crop", "flip", "colour", "rotate", "overlay") if rng.random() < 0.5] + ["resize", "jpeg"]
        for k in kinds:
            image = EDITS[k](image, rng)
        return image
    return EDITS[kind](image, rng)
