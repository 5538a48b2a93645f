"""Model input preprocessing: RGB ``PIL.Image`` → normalised ``(3, crop, crop) float32`` array.

One :class:`PreprocessSpec` per model travels with it (inside the cache, beside a custom
``.onnx`` as ``.json``, inside the SageMaker archive), so indexing, search and serving
prepare pixels identically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ConfigError

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class PreprocessSpec:
    """Resize the short side to ``resize``, centre-crop ``crop``×``crop``, scale to [0, 1],
    then ``(x - mean) / std`` per channel; channels first (NCHW)."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: str = "bicubic"

    def __post_init__(self):
        if self.crop < 1 or self.resize < self.crop:
            raise ConfigError(f"preprocess: need 1 <= crop <= resize, got resize={self.resize} crop={self.crop}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"preprocess: mean and std need 3 values each, std > 0; got {self.mean}, {self.std}")
        if self.resample not in _RESAMPLE:
            raise ConfigError(f"preprocess: resample={self.resample!r}; use one of {', '.join(_RESAMPLE)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        try:
            return cls(
                resize=int(data["resize"]),
                crop=int(data["crop"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                resample=str(data.get("resample", "bicubic")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"preprocess spec {data!r} is not valid: {exc!r}; "
                              "expected {resize, crop, mean[3], std[3], resample}") from None

    @classmethod
    def from_file(cls, path: Path) -> PreprocessSpec:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read preprocess spec {path}: {exc}") from None


# EfficientNet-Lite was trained on inputs scaled to [-1, 1].
LITE_SCALING = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
IMAGENET_SCALING = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def resize_and_crop(image: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """Resize so the short side is ``spec.resize`` then centre-crop to ``spec.crop`` square."""
    w, h = image.size
    scale = spec.resize / min(w, h)
    nw, nh = max(spec.crop, round(w * scale)), max(spec.crop, round(h * scale))
    if (nw, nh) != (w, h):
        # reducing_gap makes large downscales fast (JPEG draft-style) with negligible quality loss.
        image = image.resize((nw, nh), _RESAMPLE[spec.resample], reducing_gap=3.0)
    left, top = (nw - spec.crop) // 2, (nh - spec.crop) // 2
    return image.crop((left, top, left + spec.crop, top + spec.crop))


def to_array(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One RGB image → ``(3, crop, crop) float32`` normalised array."""
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode}; decode with lookalike.imaging first")
    pixels = np.asarray(resize_and_crop(image, spec), dtype=np.float32)
    mean = np.asarray(spec.mean, dtype=np.float32) * 255.0
    std = np.asarray(spec.std, dtype=np.float32) * 255.0
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


def to_batch(images, spec: PreprocessSpec) -> np.ndarray:
    """Images → ``(n, 3, crop, crop) float32``."""
    if not images:
        return np.zeros((0, 3, spec.crop, spec.crop), dtype=np.float32)
    return np.stack([to_array(im, spec) for im in images])
