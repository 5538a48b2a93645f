"""Cloud subcommands of the ``lookalike`` CLI (registered through ``lookalike.cli.PLUGINS``).

    lookalike sagemaker-serve --model-dir dist/model.tar.gz   SageMaker wire protocol on 127.0.0.1
    lookalike cloud-upload DIR      upload images to S3 under their content-addressed keys
    lookalike cloud-index DIR       upload, then embed through SageMaker into OpenSearch
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _cloud_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("cloud (defaults from LOOKALIKE_* environment variables)")
    g.add_argument("--endpoint", dest="sagemaker_endpoint", help="SageMaker endpoint name")
    g.add_argument("--opensearch-url", help="OpenSearch URL, e.g. https://search-xyz.eu-west-1.es.amazonaws.com")
    g.add_argument("--opensearch-index", help="OpenSearch index name (default lookalike)")
    g.add_argument("--bucket", dest="images_bucket", help="S3 bucket for the images")
    g.add_argument("--prefix", dest="images_prefix", help="key prefix in the bucket (default images/)")
    g.add_argument("--region", dest="aws_region", help="AWS region (default AWS_REGION)")
    g.add_argument("--endpoint-url", help="send every AWS call to this URL (an emulator such as moto)")
    return parent


def _settings(args: argparse.Namespace):
    from ..config import Settings

    keys = ("sagemaker_endpoint", "opensearch_url", "opensearch_index", "images_bucket", "images_prefix",
            "aws_region", "endpoint_url", "batch_size", "workers")
    return Settings.from_env(**{k: getattr(args, k, None) for k in keys})


def _images(folder: Path) -> list[Path]:
    from ..errors import LookalikeError
    from ..ingest import walk_images

    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise LookalikeError(f"{root} is not a folder", code="not_a_folder")
    return list(walk_images(root))


def cmd_sagemaker_serve(args: argparse.Namespace) -> int:
    from . import sagemaker_server

    # A fresh interpreter (-I) runs the server file, so the archive's own code/ and vendored
    # lookalike modules are imported, not this installed copy.
    argv = [sys.executable, "-I", sagemaker_server.__file__, "--model-dir", str(args.model_dir),
            "--host", args.host, "--port", str(args.port), "--endpoint-name", args.endpoint_name]
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_cloud_upload(args: argparse.Namespace) -> int:
    from .aws import s3_client
    from .storage import upload_images

    settings = _settings(args)
    if not settings.images_bucket:
        from ..errors import ConfigError

        raise ConfigError("no bucket: pass --bucket or set LOOKALIKE_IMAGES_BUCKET")
    report = upload_images(s3_client(settings), settings.images_bucket, settings.images_prefix, _images(args.folder))
    print(json.dumps(report.to_dict()))
    return 0


def cmd_cloud_index(args: argparse.Namespace) -> int:
    from ..index import open_index
    from ..ingest import ingest_folder
    from ..service import check_compatible, model_info
    from .aws import s3_client
    from .sagemaker_embedder import SageMakerEmbedder
    from .storage import upload_images

    settings = _settings(args)
    upload = None
    if not args.no_upload:
        if not settings.images_bucket:
            from ..errors import ConfigError

            raise ConfigError("no bucket: pass --bucket, set LOOKALIKE_IMAGES_BUCKET or use --no-upload")
        upload = upload_images(s3_client(settings), settings.images_bucket, settings.images_prefix,
                               _images(args.folder))
    embedder = SageMakerEmbedder.from_settings(settings)
    index = open_index("opensearch", settings=settings, dim=embedder.dim, model=model_info(embedder), create=True)
    check_compatible(embedder, index)
    report = ingest_folder(args.folder, index, embedder, batch_size=settings.batch_size, workers=settings.workers,
                           max_pixels=settings.max_image_pixels, prune=args.prune,
                           progress=sys.stderr.isatty() and not args.json)
    out = {"upload": upload.to_dict() if upload else None, "index": report.to_dict(), "count": len(index)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        if upload:
            print(f"uploaded {upload.uploaded} images ({upload.present} already in s3://{settings.images_bucket}/"
                  f"{settings.images_prefix})")
        print(f"indexed {report.indexed}, skipped {report.skipped}, failed {len(report.failed)} — "
              f"{report.seconds:.1f}s; {settings.opensearch_index} holds {len(index)}")
        for path, reason in report.failed:
            print(f"  failed: {path}: {reason}")
    return 0 if not report.failed else 1


def register(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("sagemaker-serve", help="serve a model archive over SageMaker's wire protocol")
    p.add_argument("--model-dir", type=Path, required=True, help="dist/model.tar.gz or its extracted folder")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--endpoint-name", default="lookalike", help="endpoint name boto3 clients must use")
    p.set_defaults(func=cmd_sagemaker_serve)

    cloud = _cloud_options()
    p = subparsers.add_parser("cloud-upload", parents=[cloud], help="upload a folder of images to S3")
    p.add_argument("folder", type=Path)
    p.set_defaults(func=cmd_cloud_upload)

    p = subparsers.add_parser("cloud-index", parents=[cloud],
                              help="upload images to S3 and index them through SageMaker into OpenSearch")
    p.add_argument("folder", type=Path, help="folder of images; each image's label is its parent folder's name")
    p.add_argument("--no-upload", action="store_true", help="index only (images are already in S3)")
    p.add_argument("--prune", action="store_true", help="also delete entries whose file under FOLDER is gone")
    p.add_argument("--batch-size", type=int, help="images per model request batch (default 32)")
    p.add_argument("--workers", type=int, help="decode threads")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_cloud_index)
