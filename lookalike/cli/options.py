"""Options shared by subcommands, and the one mapping of parsed flags to :class:`Settings`.

Every flag that configures lookalike is stored under the name of the :class:`Settings` field
it sets (``--endpoint`` → ``sagemaker_endpoint``), so :func:`settings_from` needs no table and
a flag cannot drift from its setting. Defaults in help texts come from ``Settings`` itself.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..config import ENGINES, POSTPROCESSING, PRECISIONS, Settings

DEFAULTS = Settings()
FIELDS = tuple(f.name for f in dataclasses.fields(Settings))


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from ``LOOKALIKE_*`` variables, overridden by every flag given (and ``extra``)."""
    overrides = {name: getattr(args, name) for name in FIELDS if getattr(args, name, None) is not None}
    overrides.update({k: v for k, v in extra.items() if v is not None})
    return Settings.from_env(**overrides)


def model_options() -> argparse.ArgumentParser:
    """``--index-dir``, the model flags, ``--batch-size`` and ``-v``: the parent of the local commands."""
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("index and model")
    g.add_argument("--index-dir", type=Path, help="index folder (env LOOKALIKE_INDEX_DIR)")
    g.add_argument("--backbone", help=f"{DEFAULTS.backbone} (default), efficientnet-lite0..4, resnet50")
    g.add_argument("--weights", type=Path, help="weights file for the backbone (e.g. a torchvision ResNet50 .pth)")
    g.add_argument("--model", type=Path, help="custom ONNX feature extractor; preprocessing spec in MODEL.json")
    g.add_argument("--head", type=Path, help="ONNX head applied after the backbone (e.g. a triplet head)")
    g.add_argument("--classifier", type=Path,
                   help="classifier .npz (lookalike train-classifier): search only within the predicted class")
    g.add_argument("--engine", choices=ENGINES,
                   help="inference engine (default: the index's; for a new index the measured default)")
    g.add_argument("--precision", choices=PRECISIONS,
                   help="model precision (default: the index's; for a new index the measured default, or with "
                        "--engine alone that engine's precision that held the quality guard: onnxruntime fp32, "
                        "openvino int8 where VNNI makes it safe, int8-bf16 on AMX CPUs, int8-w7 on AVX2 CPUs "
                        "without VNNI)")
    g.add_argument("--postprocess", choices=POSTPROCESSING,
                   help="label-free post-processing fitted on the collection (default: the index's; new: none)")
    g.add_argument("--batch-size", type=int, help=f"images per inference batch (default {DEFAULTS.batch_size})")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return common


def cloud_options() -> argparse.ArgumentParser:
    """Where the cloud stack is: the parent of ``cloud-upload`` and ``cloud-index``."""
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("cloud (defaults from LOOKALIKE_* environment variables)")
    g.add_argument("--endpoint", dest="sagemaker_endpoint", help="SageMaker endpoint name")
    g.add_argument("--opensearch-url", help="OpenSearch URL, e.g. https://search-xyz.eu-west-1.es.amazonaws.com")
    g.add_argument("--opensearch-index", help=f"OpenSearch index name (default {DEFAULTS.opensearch_index})")
    g.add_argument("--bucket", dest="images_bucket", help="S3 bucket for the images")
    g.add_argument("--prefix", dest="images_prefix", help=f"key prefix in the bucket (default {DEFAULTS.images_prefix})")
    g.add_argument("--region", dest="aws_region", help="AWS region (env AWS_REGION)")
    g.add_argument("--endpoint-url", help="send every AWS call to this URL (an emulator such as moto)")
    return parent


def output_options(parser: argparse.ArgumentParser, *, progress: bool = True) -> None:
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    if progress:
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
        parser.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
