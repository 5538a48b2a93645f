"""Schemathesis hooks for tests/api/test_openapi.py (loaded through ``SCHEMATHESIS_HOOKS``).

The document's ``format: byte`` strings are generated as real images (PNG, JPEG, WebP, GIF,
BMP, TIFF of random size and colour): any other base64 is rightly refused with a 400 that no
schema can predict, and with real images the 200 bodies get checked too.
"""

from __future__ import annotations

import base64
import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image


def _image(width: int, height: int, colour: tuple[int, int, int], fmt: str) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format=fmt)
    return base64.b64encode(out.getvalue()).decode()


schemathesis.openapi.format("byte", st.builds(
    _image, st.integers(1, 96), st.integers(1, 96), st.tuples(*[st.integers(0, 255)] * 3),
    st.sampled_from(["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"])))
