"""Image decoding with limits: bytes → RGB ``PIL.Image``, the same in every code path.

Only Pillow is imported here (no numpy), so the Lambda package can validate images with
exactly the code the local API uses.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import InvalidInput, PayloadTooLarge

# A truncated file must be rejected, not silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+;base64,", re.IGNORECASE)
BACKGROUND = (255, 255, 255)
ORIENTATION_TAG = 0x0112  # EXIF Orientation


def decode_base64(text: str, *, max_bytes: int | None = None) -> bytes:
    """Decode standard base64 (a ``data:image/...;base64,`` prefix is accepted)."""
    if not isinstance(text, str):
        raise InvalidInput("'image' must be a base64 string.")
    text = _DATA_URL.sub("", text.strip(), count=1)
    if not text:
        raise InvalidInput("'image' is empty.")
    if max_bytes is not None and len(text) * 3 // 4 > max_bytes:
        raise PayloadTooLarge(f"Image is larger than {max_bytes} bytes.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("'image' is not valid base64.") from None


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Decode image bytes to an RGB image: EXIF orientation applied, alpha flattened on white,
    grey and palette images converted to RGB; the first frame of an animation.

    Raises ``InvalidInput`` for bytes that are not a complete image and ``PayloadTooLarge``
    when width × height exceeds ``max_pixels`` (checked before the pixels are decoded).
    """
    if not data:
        raise InvalidInput("Image is empty.")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard warns (or raises) on huge images; our own limit below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
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
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation, flatten transparency on white and convert to RGB."""
    try:
        if image.getexif().get(ORIENTATION_TAG, 1) != 1:  # exif_transpose copies even when upright
            image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not reject an otherwise good image
        pass
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
