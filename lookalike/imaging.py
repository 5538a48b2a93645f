"""Image decoding with limits: bytes → RGB ``PIL.Image``, the same in every code path.

Only Pillow is imported here (no numpy), so the Lambda package can validate images with
exactly the code the local API uses.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import threading
import time
import warnings
from contextlib import contextmanager

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
# The plugins of the formats below, imported now: then Image.open(formats=FORMATS) finds them all
# registered and never runs Image.init(), which imports ~40 plugins (25 ms more, at the first
# decode of every process: a Lambda's first request, the first images of an ingest).
from PIL import BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin  # noqa: F401, E501

from .errors import InvalidInput, Overloaded, PayloadTooLarge

# A truncated file must be rejected, not silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# The formats lookalike promises; Pillow would also open PPM, ICO, PCX, TGA and more, whose
# decoders see far less use (and scrutiny), so they are refused like any non-image.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_BASE64_SPACES = " \t\r\n"  # what MIME base64 (``base64`` without ``-w0``) puts between its lines
_NO_BASE64_SPACES = str.maketrans("", "", _BASE64_SPACES)
_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+;base64,", re.IGNORECASE)
BACKGROUND = (255, 255, 255)
ORIENTATION_TAG = 0x0112  # EXIF Orientation


def decode_base64(text: str, *, max_bytes: int | None = None) -> bytes:
    """Decode base64 as clients send it: the standard or the URL-safe alphabet, with or without
    ``=`` padding, line breaks of MIME base64 (``base64`` without ``-w0``) ignored, and an
    optional ``data:image/...;base64,`` prefix. Anything else (other characters, a mixed
    alphabet, a length no encoder makes) is refused."""
    if not isinstance(text, str):
        raise InvalidInput("'image' must be a base64 string.")
    text = _DATA_URL.sub("", text.strip(), count=1)
    # Looking for spaces first skips a pass over the text when there are none (the usual case);
    # translate then drops them 10x faster than a regex (1.6 ms for 170 KB of base64).
    if any(space in text for space in _BASE64_SPACES):
        text = text.translate(_NO_BASE64_SPACES)
    if not text:
        raise InvalidInput("'image' is empty.")
    if max_bytes is not None and len(text) * 3 // 4 > max_bytes:
        raise PayloadTooLarge(f"Image is larger than {max_bytes} bytes.")
    urlsafe = "-" in text or "_" in text
    if urlsafe and ("+" in text or "/" in text):
        raise InvalidInput("'image' mixes the standard and the URL-safe base64 alphabets.")
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        raise InvalidInput("'image' is not valid base64 (its length is not one an encoder makes).")
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("'image' is not valid base64.") from None


def decode_image(data: bytes, *, max_pixels: int, grey: bool = False) -> Image.Image:
    """Decode image bytes to an RGB image: EXIF orientation applied, alpha flattened on white,
    grey and palette images converted to RGB; the first frame of an animation. With ``grey``,
    grey images (``L``, ``LA``) stay one ``L`` plane instead (see :func:`to_rgb`).

    Raises ``InvalidInput`` for bytes that are not a complete image and ``PayloadTooLarge``
    when width × height exceeds ``max_pixels`` (checked before the pixels are decoded).
    """
    if not data:
        raise InvalidInput("Image is empty.")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard warns (or raises) on huge images; our own limit below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise PayloadTooLarge(
                    f"Image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}.",
                    code="image_too_large",
                )
            image.load()
    except Image.DecompressionBombError:
        raise PayloadTooLarge(f"Image exceeds the pixel limit of {max_pixels}.", code="image_too_large") from None
    except UnidentifiedImageError:
        raise InvalidInput("Data is not a recognised image (JPEG, PNG, WebP, BMP, GIF or TIFF).",
                           code="invalid_image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInput(f"Image could not be decoded: {exc}.", code="invalid_image") from None
    return to_rgb(image, grey=grey)


def to_rgb(image: Image.Image, *, grey: bool = False) -> Image.Image:
    """Apply EXIF orientation, flatten transparency on white and convert to RGB.

    With ``grey``, an ``L`` or ``LA`` image comes back as ``L`` (flattened the same way): its RGB
    conversion has R = G = B = L, so a consumer that resizes per band (``to_array``) gets the
    identical pixels from one plane instead of three.
    """
    try:
        if image.getexif().get(ORIENTATION_TAG, 1) != 1:  # exif_transpose copies even when upright
            image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not reject an otherwise good image
        pass
    if grey and image.mode in ("L", "LA"):
        if image.mode == "L":
            return image
        # The same "over" blend per band as the RGB paste below, on one band.
        flat = Image.new("L", image.size, BACKGROUND[0])
        flat.paste(image.getchannel("L"), mask=image.getchannel("A"))
        return flat
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        # Pasting through the alpha channel onto an RGB canvas is the same "over" blend as
        # alpha_composite on an opaque background, in one pass instead of three.
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba)
        return flat
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


def load_image_file(path, *, max_pixels: int) -> tuple[bytes, Image.Image]:
    """Read a file and decode it; returns the raw bytes (for hashing) and the RGB image."""
    with open(path, "rb") as fh:
        data = fh.read()
    return data, decode_image(data, max_pixels=max_pixels)


def thumbnail_bytes(image: Image.Image, size: int) -> bytes:
    """A JPEG thumbnail whose longer side is at most ``size`` pixels."""
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=85)
    return out.getvalue()


def image_pixels(data: bytes) -> int:
    """Width × height from the image header alone (0 when it cannot be read; decoding says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(data)).size
        return width * height
    except Exception:  # noqa: BLE001 - any failure is reported by decode_image with the right code
        return 0


class DecodeBudget:
    """Bounds how many pixels of large images are decoded at once in this process.

    Decoding and resizing costs ~4-8 bytes per pixel, so one 40 MP image is 150+ MB; sixteen at
    once would be several GB. Images under ``small`` pixels pass freely; larger ones wait for
    their share of ``pixels`` for up to ``wait`` seconds, then get :class:`Overloaded` (503 with
    ``Retry-After``) instead of taking the server down.
    """

    def __init__(self, pixels: int, *, wait: float = 10.0, small: int = 4_000_000, on_release=None):
        self.pixels, self.wait, self.small = int(pixels), float(wait), int(small)
        self.in_use = 0
        self._on_release = on_release
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int):
        """Hold ``pixels`` of the budget while the block runs (free for small images)."""
        if pixels < self.small:
            yield
            return
        share = min(int(pixels), self.pixels)  # one image at the limit may always run alone
        deadline = time.monotonic() + self.wait
        with self._cond:
            while self.in_use + share > self.pixels:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    if self.in_use + share > self.pixels:
                        raise Overloaded(f"The server is decoding other large images; retry in a few seconds "
                                         f"({pixels} pixels waited {self.wait:.0f} s).")
            self.in_use += share
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= share
                idle = self.in_use == 0
                self._cond.notify_all()
            if idle and self._on_release is not None:
                self._on_release()

