"""Preprocessing: resize + centre crop + scaling match the weights, identically everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lookalike.embedders.backbones import BACKBONES
from lookalike.errors import ConfigError
from lookalike.embedders.preprocess import (GREY_CHECK_PIXELS, PreprocessSpec, grey_band, resize_and_crop, to_array,
                                           to_batch)

LITE2 = BACKBONES["efficientnet-lite2"].spec


def test_lite2_spec_matches_its_training_resolution():
    assert (LITE2.resize, LITE2.crop) == (292, 260)
    assert LITE2.mean == (0.5, 0.5, 0.5) and LITE2.std == (0.5, 0.5, 0.5)


def test_scaling_to_minus_one_one():
    white = to_array(Image.new("RGB", (300, 300), (255, 255, 255)), LITE2)
    black = to_array(Image.new("RGB", (300, 300), (0, 0, 0)), LITE2)
    assert white.shape == (3, 260, 260) and white.dtype == np.float32
    np.testing.assert_allclose(white, 1.0, atol=1e-6)
    np.testing.assert_allclose(black, -1.0, atol=1e-6)


def test_imagenet_scaling():
    spec = BACKBONES["resnet50"].spec
    arr = to_array(Image.new("RGB", (256, 256), (124, 116, 104)), spec)
    np.testing.assert_allclose(arr.mean(axis=(1, 2)), [(124 / 255 - 0.485) / 0.229, (116 / 255 - 0.456) / 0.224,
                                                       (104 / 255 - 0.406) / 0.225], atol=1e-4)


@pytest.mark.parametrize("name", ["efficientnet-lite2", "resnet50"])
def test_every_pixel_is_scaled_per_channel(name):
    spec = BACKBONES[name].spec
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    arr = to_array(image, spec)
    pixels = np.asarray(resize_and_crop(image, spec))
    expected = ((pixels / 255.0 - np.asarray(spec.mean)) / np.asarray(spec.std)).transpose(2, 0, 1)
    assert arr.shape == (3, spec.crop, spec.crop) and arr.dtype == np.float32 and arr.flags.c_contiguous
    np.testing.assert_allclose(arr, expected, atol=2e-6)


def test_short_side_resized_then_centre_cropped():
    # Left half red, right half blue, wide image: the crop keeps the centre (both colours).
    image = Image.new("RGB", (600, 300), (255, 0, 0))
    image.paste((0, 0, 255), (300, 0, 600, 300))
    out = resize_and_crop(image, LITE2)
    assert out.size == (260, 260)
    assert out.getpixel((5, 130))[0] > 200 and out.getpixel((254, 130))[2] > 200


@pytest.mark.parametrize("size", [(28, 28), (167, 262), (600, 300), (1000, 750), (292, 400)])
def test_cropped_resize_matches_resizing_the_whole_image_then_cropping(size, demo_dir):
    source = Image.open(sorted(demo_dir.rglob("*.png"))[0]).convert("RGB").resize(size, Image.Resampling.BICUBIC)
    w, h = size
    scale = LITE2.resize / min(w, h)
    nw, nh = max(LITE2.crop, round(w * scale)), max(LITE2.crop, round(h * scale))
    left, top = (nw - LITE2.crop) // 2, (nh - LITE2.crop) // 2
    full = source.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    reference = np.asarray(full.crop((left, top, left + LITE2.crop, top + LITE2.crop)), np.int16)
    got = np.asarray(resize_and_crop(source, LITE2), np.int16)
    assert got.shape == reference.shape == (260, 260, 3)
    assert np.abs(got - reference).mean() < 0.1  # the same pixels, up to rounding at the crop edges


def test_tiny_images_are_upscaled():
    assert to_array(Image.new("RGB", (28, 28)), LITE2).shape == (3, 260, 260)


def test_channels_first_rgb_order():
    arr = to_array(Image.new("RGB", (300, 300), (255, 0, 0)), LITE2)
    assert arr[0].mean() == pytest.approx(1.0) and arr[1].mean() == pytest.approx(-1.0)


def test_batch_shape_and_empty():
    assert to_batch([Image.new("RGB", (50, 80))] * 3, LITE2).shape == (3, 3, 260, 260)
    assert to_batch([], LITE2).shape == (0, 3, 260, 260)


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "CMYK"])
def test_modes_other_than_rgb_and_grey_are_refused(mode):
    with pytest.raises(ValueError, match="RGB or L"):
        to_array(Image.new(mode, (300, 300)), LITE2)


GREY_SIZES = [(28, 28), (140, 128), (600, 300), (1000, 750), (2400, 1600), (292, 400)]


@pytest.mark.parametrize("name", ["efficientnet-lite2", "resnet50"])
@pytest.mark.parametrize("size", GREY_SIZES)
def test_grey_image_gives_the_array_of_its_rgb_conversion(name, size):
    """One resized plane broadcast to three channels is bit-identical to converting to RGB first
    (Lite2 scales every channel alike: copied planes; ResNet per channel: three passes of one plane)."""
    spec = BACKBONES[name].spec
    w, h = size
    grey = Image.fromarray(np.random.default_rng(w * h).integers(0, 256, (h, w), dtype=np.uint8), "L")
    assert np.array_equal(to_array(grey, spec), _rgb_reference(grey.convert("RGB"), spec))


def test_real_grey_images_give_the_arrays_of_their_rgb_conversion(demo_dir):
    from lookalike.eval.datasets import fashion_mnist
    from tests.conftest import DATASETS_DIR

    try:
        fmnist = fashion_mnist("test", datasets_dir=DATASETS_DIR)
    except ConfigError:
        pytest.skip("Fashion-MNIST is not unpacked (make datasets)")
    images = [fmnist.image(i) for i in range(0, 10_000, 500)]  # RGB with R = G = B
    images += [Image.open(p).convert("L") for p in sorted(demo_dir.rglob("*.png"))[::10]]
    for image in images:
        assert np.array_equal(to_array(image, LITE2), _rgb_reference(image.convert("RGB"), LITE2))


@pytest.mark.parametrize("size", GREY_SIZES)
def test_grey_content_stored_as_rgb_is_found_and_colour_is_not(size):
    w, h = size
    plane = np.random.default_rng(1).integers(0, 256, (h, w), dtype=np.uint8)
    grey_rgb = Image.fromarray(np.repeat(plane[..., None], 3, axis=2))
    assert grey_band(grey_rgb) is not None or w * h > 16 * GREY_CHECK_PIXELS
    assert np.array_equal(to_array(grey_rgb, LITE2), _rgb_reference(grey_rgb, LITE2))
    pixels = np.repeat(plane[..., None], 3, axis=2)
    pixels[h // 3, w // 5, 1] ^= 1  # one pixel off grey
    assert grey_band(Image.fromarray(pixels)) is None


def _rgb_reference(image: Image.Image, spec) -> np.ndarray:
    """The three-band path, as before grey images had their own: resize RGB, scale each channel."""
    pixels = np.asarray(resize_and_crop(image, spec))
    scale = 1.0 / (255.0 * np.asarray(spec.std, dtype=np.float64))
    offset = -np.asarray(spec.mean, dtype=np.float64) / np.asarray(spec.std, dtype=np.float64)
    out = np.empty((3, spec.crop, spec.crop), dtype=np.float32)
    for c in range(3):
        np.multiply(pixels[:, :, c], np.float32(scale[c]), out=out[c], dtype=np.float32)
        out[c] += np.float32(offset[c])
    return out


def test_spec_roundtrip_and_validation(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"resize": 256, "crop": 224, "mean": [0.4, 0.4, 0.4], "std": [0.2, 0.2, 0.2]}')
    spec = PreprocessSpec.from_file(path)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError):
        PreprocessSpec(resize=100, crop=224, mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(ConfigError):
        PreprocessSpec.from_dict({"resize": 256})
    with pytest.raises(ConfigError):
        PreprocessSpec(resize=256, crop=224, mean=(0, 0, 0), std=(1, 1, 1), resample="cubic-ish")
