"""Build the SageMaker model archive: ``python model_package/build.py --out dist/model.tar.gz``.

Layout (what the SageMaker PyTorch inference container expects in ``/opt/ml/model``):
``<name>.onnx`` (fp32, or int8 with ``--precision int8``), ``<name>.json`` (preprocessing spec), optional head ``.onnx``,
``lookalike-model.json`` and ``code/`` (inference.py, requirements.txt, lookalike/..., and
wheels/ so the container installs ONNX Runtime without network access).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from lookalike.artifacts.packaging import (
        ARCHIVE_DEFAULT,
        ARCHIVE_PRECISIONS,
        build_model_archive,
        download_model_wheels,
    )
    from lookalike.config import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist/model.tar.gz"))
    parser.add_argument("--backbone", help="backbone name (default: LOOKALIKE_BACKBONE or efficientnet-lite2)")
    parser.add_argument("--weights", help="weights file for the backbone")
    parser.add_argument("--model", type=Path, help="custom ONNX feature extractor (spec in MODEL.json)")
    parser.add_argument("--head", type=Path, help="ONNX head applied after the backbone")
    parser.add_argument("--precision", choices=ARCHIVE_PRECISIONS, default=ARCHIVE_DEFAULT,
                        help="fp32 (default: the endpoint's CPU is unknown, and int8 kernels may saturate "
                             "without VNNI) or int8 (for instances with AVX-512 VNNI); recorded in the manifest")
    parser.add_argument("--python-version", default="3.11",
                        help="Python of the inference container (pytorch-inference:2.3.0-cpu-py311 → 3.11)")
    parser.add_argument("--wheels-dir", type=Path, help="wheels for code/wheels/ (downloaded here if missing)")
    parser.add_argument("--online", action="store_true",
                        help="ship no wheels: the container pip-installs code/requirements.txt from PyPI")
    parser.add_argument("--wheels-only", action="store_true", help="only download the wheels into --wheels-dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    wheels = None
    if not args.online:
        wheels = args.wheels_dir or Path("build") / f"model-wheels-py{args.python_version}"
        if args.wheels_only or not wheels.is_dir():
            download_model_wheels(wheels, python_version=args.python_version)
        if args.wheels_only:
            return 0
    settings = Settings.from_env(backbone=args.backbone, model=args.model, head=args.head,
                                 weights=Path(args.weights) if args.weights else None)
    out = build_model_archive(args.out, backbone=settings.backbone, cache_dir=settings.cache_dir,
                              weights=settings.weights, model=settings.model, head=settings.head, wheels_dir=wheels,
                              precision=args.precision, max_image_pixels=settings.max_image_pixels)
    print(f"{out}  {out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
