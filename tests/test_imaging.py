"""Decoding with limits: orientation, alpha, grey, truncation, bombs, base64."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from lookalike.errors import InvalidInput, PayloadTooLarge
from lookalike.imaging import ORIENTATION_TAG, decode_base64, decode_image, thumbnail_bytes, to_rgb

LIMIT = 40_000_000


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kw)
    return out.getvalue()


def test_exif_orientation_is_applied():
    # A 40x20 image whose EXIF says "rotate 90° CW" must come out 20x40.
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    decoded = decode_image(encode(image, "JPEG", exif=_orientation(6)), max_pixels=LIMIT)
    assert decoded.size == (20, 40)


def test_alpha_is_flattened_on_white():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    decoded = decode_image(encode(image), max_pixels=LIMIT)
    assert decoded.mode == "RGB"
    assert decoded.getpixel((5, 5)) == (255, 255, 255)
    assert decoded.getpixel((0, 0)) == (255, 0, 0)


def test_half_transparent_pixel_blends_with_white():
    image = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    r, g, b = decode_image(encode(image), max_pixels=LIMIT).getpixel((0, 0))
    assert 120 <= r <= 135 and r == g == b


@pytest.mark.parametrize("mode", ["L", "LA", "P", "1", "I;16", "CMYK"])
def test_other_modes_become_rgb(mode):
    image = Image.new(mode, (6, 4))
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    assert decode_image(encode(image, fmt), max_pixels=LIMIT).mode == "RGB"


def test_palette_with_transparency_is_flattened():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    assert decode_image(encode(image), max_pixels=LIMIT).getpixel((1, 1)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_supported_formats(fmt):
    assert decode_image(encode(Image.new("RGB", (16, 16), (10, 200, 30)), fmt), max_pixels=LIMIT).size == (16, 16)


def test_not_an_image():
    with pytest.raises(InvalidInput) as err:
        decode_image(b"hello, this is text", max_pixels=LIMIT)
    assert err.value.code == "invalid_image"


def test_empty_bytes():
    with pytest.raises(InvalidInput):
        decode_image(b"", max_pixels=LIMIT)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_rejected(fmt):
    data = encode(Image.effect_noise((256, 256), 50).convert("RGB"), fmt)
    with pytest.raises(InvalidInput) as err:
        decode_image(data[: len(data) // 2], max_pixels=LIMIT)
    assert err.value.status == 400


def test_pixel_limit_is_checked_before_decoding():
    # 10000x10000 white PNG: ~100 MP decoded but only a few hundred KB compressed (a classic bomb).
    data = encode(Image.new("L", (10_000, 10_000), 255))
    assert len(data) < 1_000_000
    with pytest.raises(PayloadTooLarge) as err:
        decode_image(data, max_pixels=LIMIT)
    assert err.value.code == "image_too_large" and err.value.status == 413


def test_pixel_limit_boundary():
    data = encode(Image.new("RGB", (100, 100)))
    assert decode_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(PayloadTooLarge):
        decode_image(data, max_pixels=9_999)


def test_base64_accepts_plain_and_data_urls():
    raw = b"\x89PNG\r\n"
    text = base64.b64encode(raw).decode()
    assert decode_base64(text) == raw
    assert decode_base64("data:image/png;base64," + text) == raw


@pytest.mark.parametrize("variant", [base64.b64encode, base64.urlsafe_b64encode, base64.encodebytes,
                                     lambda raw: base64.b64encode(raw).rstrip(b"="),
                                     lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=")],
                         ids=["standard", "urlsafe", "mime", "unpadded", "urlsafe-unpadded"])
def test_base64_accepts_what_encoders_send(variant):
    raw = bytes(range(256)) * 4 + b"\xfb\xff"  # every byte, and the ones that differ between alphabets
    assert decode_base64(variant(raw).decode()) == raw


@pytest.mark.parametrize("bad", ["not base64!!", "abcde", "ab+c-d==", "YW\x00I=", 123, None, "", "  \n"])
def test_base64_rejects_bad_input(bad):
    with pytest.raises(InvalidInput):
        decode_base64(bad)


@pytest.mark.parametrize("fmt", ["PPM", "ICO", "PCX", "TGA", "XBM"])
def test_only_the_documented_formats_decode(fmt):
    """Pillow opens these too; lookalike promises JPEG, PNG, WebP, BMP, GIF and TIFF only."""
    out = io.BytesIO()
    Image.new("1" if fmt == "XBM" else "RGB", (16, 16)).save(out, format=fmt)
    with pytest.raises(InvalidInput, match="not a recognised image"):
        decode_image(out.getvalue(), max_pixels=10**6)


def test_base64_size_limit():
    with pytest.raises(PayloadTooLarge):
        decode_base64(base64.b64encode(b"x" * 2000).decode(), max_bytes=1000)


def test_thumbnail_keeps_aspect_and_is_jpeg():
    thumb = Image.open(io.BytesIO(thumbnail_bytes(Image.new("RGB", (1000, 500)), 256)))
    assert thumb.format == "JPEG" and thumb.size == (256, 128)


def test_to_rgb_idempotent():
    image = Image.new("RGB", (3, 3), (1, 2, 3))
    assert to_rgb(image).tobytes() == image.tobytes()


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_flattening_equals_compositing_over_white(mode):
    # Every alpha level over every colour: the one-pass flatten must equal Pillow's "over" blend.
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    pixels[..., 3] = np.arange(64 * 64).reshape(64, 64) % 256
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    reference = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA"))
    assert np.array_equal(np.asarray(to_rgb(image)), np.asarray(reference.convert("RGB")))


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_grey_stays_one_plane_equal_to_the_rgb_decode(mode):
    # Every grey level at every alpha: the one-band decode is the RGB decode's (equal) band.
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (64, 64, 2), dtype=np.uint8)
    pixels[..., 1] = np.arange(64 * 64).reshape(64, 64) % 256
    data = encode(Image.fromarray(pixels, "LA").convert(mode))
    grey, rgb = decode_image(data, max_pixels=LIMIT, grey=True), decode_image(data, max_pixels=LIMIT)
    assert grey.mode == "L" and rgb.mode == "RGB"
    assert np.array_equal(np.repeat(np.asarray(grey)[..., None], 3, axis=2), np.asarray(rgb))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "1", "CMYK"])
def test_grey_decode_leaves_other_modes_rgb(mode):
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    assert decode_image(encode(Image.new(mode, (6, 4)), fmt), max_pixels=LIMIT, grey=True).mode == "RGB"


def test_upright_image_is_not_copied_but_rotated_one_is():
    upright = Image.new("RGB", (4, 2))
    assert to_rgb(upright) is upright
    rotated = Image.open(io.BytesIO(encode(upright, "JPEG", exif=_orientation(6))))
    assert to_rgb(rotated).size == (2, 4)


def _orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = value
    return exif


def test_decode_budget_admits_large_images_in_turn_and_refuses_after_the_wait():
    import threading

    from lookalike.errors import Overloaded
    from lookalike.imaging import DecodeBudget

    released = []
    budget = DecodeBudget(50, wait=0.2, small=10, on_release=lambda: released.append(1))
    with budget.hold(5):  # small images never wait
        assert budget.in_use == 0
    with budget.hold(40):
        assert budget.in_use == 40
        with pytest.raises(Overloaded) as excinfo:
            with budget.hold(40):
                pass
        assert excinfo.value.status == 503 and excinfo.value.headers["Retry-After"]
        with budget.hold(5):
            pass
    assert budget.in_use == 0 and released == [1]
    with budget.hold(500):  # larger than the whole budget: admitted alone
        assert budget.in_use == 50
    order = []
    with budget.hold(40):
        waiter = threading.Thread(target=lambda: budget.hold(40).__enter__() or order.append("second"))
        waiter.start()
        order.append("first done")
    waiter.join(2)
    assert order == ["first done", "second"]

