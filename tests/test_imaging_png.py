"""PNG decoding through libspng (pyspng, the ``fast`` extra): the same pixels as Pillow on every
file it takes, Pillow for every file whose result is more than the bare samples."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike import imaging
from lookalike.errors import InvalidInput
from lookalike.imaging import decode_image

pytest.importorskip("pyspng")

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 40_000_000


class Spy:
    """Counts the PNGs pyspng decoded."""

    def __init__(self, module):
        self.module, self.calls = module, 0

    def load(self, data):
        self.calls += 1
        return self.module.load(data)


@pytest.fixture
def spy(monkeypatch):
    import pyspng

    spy = Spy(pyspng)
    monkeypatch.setattr(imaging, "_spng", spy)
    return spy


def pillow_only(data: bytes, grey: bool = False) -> Image.Image:
    saved, imaging._spng = imaging._spng, False
    try:
        return decode_image(data, max_pixels=LIMIT, grey=grey)
    finally:
        imaging._spng = saved


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(pixels: np.ndarray, colour_type: int, *extra: bytes) -> bytes:
    """A PNG written by hand (Pillow writes neither 16-bit RGB nor a gAMA chunk): filter 0 rows."""
    depth = pixels.dtype.itemsize * 8
    height, width = pixels.shape[:2]
    rows = pixels.astype(pixels.dtype.newbyteorder(">")).reshape(height, -1).view(np.uint8)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))
            + b"".join(extra) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def real_pngs() -> list[Path]:
    files = sorted((ROOT / "data" / "demo").rglob("*.png"))
    files += sorted((ROOT / "lookalike" / "embedders" / "calibration").glob("*.png"))[::3]
    return files


def test_real_pngs_decode_to_pillows_pixels(spy):
    files = real_pngs()
    for path in files:
        data = path.read_bytes()
        for grey in (False, True):
            assert same(decode_image(data, max_pixels=LIMIT, grey=grey), pillow_only(data, grey)), path
    # Most of them took the fast path (the palette ones did not): the comparison above compared something.
    assert spy.calls >= len(files), (spy.calls, len(files))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_eight_bit_images_take_the_fast_path(spy, mode):
    rng = np.random.default_rng(0)
    shape = (37, 53, len(mode)) if len(mode) > 1 else (37, 53)
    image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, format="PNG")
    data = out.getvalue()
    assert same(decode_image(data, max_pixels=LIMIT, grey=True), pillow_only(data, grey=True))
    assert spy.calls == 1


def test_gamma_chunk_is_ignored_by_both(spy):
    pixels = np.arange(64 * 3, dtype=np.uint8).reshape(8, 8, 3)
    data = png(pixels, 2, chunk(b"gAMA", struct.pack(">I", 100000)))
    decoded = decode_image(data, max_pixels=LIMIT)
    assert spy.calls == 1
    assert np.array_equal(np.asarray(decoded), pixels) and same(decoded, pillow_only(data))


def _save(image: Image.Image, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **kw)
    return out.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[imaging.ORIENTATION_TAG] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("case", ["16-bit", "exif", "trns", "palette", "animated", "grey+alpha"])
def test_what_pillow_changes_stays_with_pillow(spy, case):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8))
    data = {
        "16-bit": lambda: png(rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16), 2),
        "exif": lambda: _save(rgb, exif=_exif(6)),
        "trns": lambda: _save(rgb, transparency=tuple(int(v) for v in np.asarray(rgb)[0, 0])),
        "palette": lambda: _save(rgb.convert("P")),
        "animated": lambda: _save(rgb, save_all=True, append_images=[rgb.transpose(Image.Transpose.ROTATE_180)]),
        "grey+alpha": lambda: _save(rgb.convert("LA")),
    }[case]()
    decoded = decode_image(data, max_pixels=LIMIT)
    assert spy.calls == 0
    assert same(decoded, pillow_only(data))
    if case == "exif":
        assert decoded.size == (20, 40)  # turned upright


def test_broken_pngs_are_still_refused(spy):
    pixels = np.zeros((16, 16, 3), np.uint8)
    good = png(pixels, 2)
    idat = good.index(b"IDAT")
    bad_crc = good[:idat + 4] + bytes([good[idat + 4] ^ 0xFF]) + good[idat + 5:]
    for data in (good[:idat + 10], bad_crc):
        with pytest.raises(InvalidInput):
            decode_image(data, max_pixels=LIMIT)
