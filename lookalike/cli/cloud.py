"""Cloud subcommands.

    lookalike cloud-upload DIR      upload images to S3 under their content-addressed keys
    lookalike cloud-index DIR       upload, then embed through SageMaker into OpenSearch
    lookalike push --to opensearch  copy the local index into OpenSearch without re-embedding

The model archive runs locally under the real SageMaker serving stack with ``make sagemaker-local``
(TorchServe + the SageMaker toolkit in their own virtualenv; see scripts/sagemaker_local.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..errors import ConfigError, LookalikeError
from .options import DEFAULTS, cloud_options, output_options, settings_from


def _images(folder: Path) -> list[Path]:
    from ..index.ingest import walk_images

    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise LookalikeError(f"{root} is not a folder", code="not_a_folder")
    return list(walk_images(root))


def cmd_cloud_upload(args: argparse.Namespace) -> int:
    from ..cloud.aws import s3_client
    from ..cloud.storage import upload_images

    settings = settings_from(args)
    if not settings.images_bucket:
        raise ConfigError("no bucket: pass --bucket or set LOOKALIKE_IMAGES_BUCKET")
    report = upload_images(s3_client(settings), settings.images_bucket, settings.images_prefix, _images(args.folder))
    print(json.dumps(report.to_dict()))
    return 0


def cmd_cloud_index(args: argparse.Namespace) -> int:
    from ..cloud.aws import s3_client
    from ..cloud.sagemaker_embedder import SageMakerEmbedder
    from ..cloud.storage import upload_images
    from ..index import open_index
    from ..index.ingest import ingest_folder
    from ..search.compat import check_compatible, model_info

    settings = settings_from(args)
    upload = None
    if not args.no_upload:
        if not settings.images_bucket:
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
    _register_push(subparsers)
    cloud = cloud_options()
    p = subparsers.add_parser("cloud-upload", parents=[cloud], help="upload a folder of images to S3")
    p.add_argument("folder", type=Path)
    p.set_defaults(func=cmd_cloud_upload)

    p = subparsers.add_parser("cloud-index", parents=[cloud],
                              help="upload images to S3 and index them through SageMaker into OpenSearch")
    p.add_argument("folder", type=Path, help="folder of images; each image's label is its parent folder's name")
    p.add_argument("--no-upload", action="store_true", help="index only (images are already in S3)")
    p.add_argument("--prune", action="store_true", help="also delete entries whose file under FOLDER is gone")
    p.add_argument("--batch-size", type=int, help=f"images per model request batch (default {DEFAULTS.batch_size})")
    p.add_argument("--workers", type=int, help=f"decode threads (default {DEFAULTS.workers})")
    output_options(p, progress=False)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_cloud_index)


def cmd_push(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..index.faiss_index import FaissIndex
    from ..index.opensearch import OpenSearchIndex
    from ..index.push import push_index

    settings = settings_from(args)
    local = FaissIndex.load(settings.index_dir)
    if not local.model.get("name"):
        raise ConfigError(f"{settings.index_dir} does not record which model made its vectors; re-index it")
    if local.model.get("engine", "onnxruntime") != "onnxruntime":
        # The SageMaker archive runs ONNX Runtime only: the Lambda would refuse every query as another model's.
        print(f"warning: {settings.index_dir} was embedded by {local.model['engine']} "
              f"{local.model.get('precision')}, which the SageMaker archive cannot run; for the cloud, build the "
              "index with --engine onnxruntime --precision fp32 (or int8 with `make build-model PRECISION=int8`)",
              file=sys.stderr)
    remote = OpenSearchIndex.from_settings(settings, dim=local.dim, model=local.model, create=True,
                                           recreate=args.recreate)
    show = not args.quiet and (args.progress or sys.stderr.isatty())
    with tqdm(total=len(local), unit="vec", desc="push", disable=not show) as bar:
        report = push_index(local, remote, prune=args.prune, progress=bar.update)
    if args.json:
        print(json.dumps({**asdict(report), "index": remote.name, "url": remote.url}, indent=2))
    else:
        rate = report.ok / report.seconds if report.seconds else 0.0
        print(f"pushed {report.ok} of {report.total} entries to OpenSearch index {remote.name!r} at {remote.url}: "
              f"{report.failed} failed, {report.retries} retries, {report.batches} bulk requests"
              + (f", pruned {report.pruned}" if args.prune else "")
              + f" — {report.seconds:.1f}s, {rate:.0f}/s; index holds {len(remote)}")
        for id_, reason in report.errors:
            print(f"  failed: {id_}: {reason}")
    return 0 if report.failed == 0 else 1


def _register_push(subparsers) -> None:
    """``--batch-size`` here counts documents per bulk request, hence its own setting."""
    p = subparsers.add_parser("push", help="copy the local index into OpenSearch (no re-embedding)",
                              description="Copy a local index's vectors and metadata into OpenSearch without "
                                          "re-embedding. A missing OpenSearch index is created with the local "
                                          "index's dimension and model; entries are upserted by id, so pushing "
                                          "again is safe.")
    p.add_argument("--to", choices=["opensearch"], required=True, help="destination backend")
    p.add_argument("--url", dest="opensearch_url", help="cluster endpoint, e.g. https://search-x.eu-west-1.es.amazonaws.com "
                                 "(env LOOKALIKE_OPENSEARCH_URL)")
    p.add_argument("--index-name", dest="opensearch_index", help="OpenSearch index (default lookalike; env LOOKALIKE_OPENSEARCH_INDEX)")
    p.add_argument("--index-dir", type=Path, help="local index folder (env LOOKALIKE_INDEX_DIR)")
    p.add_argument("--auth", dest="opensearch_auth", choices=["none", "basic", "sigv4"], help="authentication (env LOOKALIKE_OPENSEARCH_AUTH)")
    p.add_argument("--user", dest="opensearch_username", help="user for --auth basic (env LOOKALIKE_OPENSEARCH_USERNAME)")
    p.add_argument("--password", dest="opensearch_password", help="password for --auth basic; prefer env LOOKALIKE_OPENSEARCH_PASSWORD, "
                                      "a flag is visible to other local users")
    p.add_argument("--region", dest="aws_region", help="AWS region for --auth sigv4 (env AWS_REGION)")
    p.add_argument("--batch-size", dest="opensearch_bulk_size", type=int,
                   help=f"documents per bulk request (default {DEFAULTS.opensearch_bulk_size}; env "
                                                  "LOOKALIKE_OPENSEARCH_BULK_SIZE)")
    p.add_argument("--engine", dest="opensearch_engine", choices=["faiss", "lucene"], help="HNSW engine if the index is created (default faiss)")
    p.add_argument("--prune", action="store_true", help="also delete OpenSearch entries the local index lacks")
    p.add_argument("--recreate", action="store_true",
                   help="delete and re-create the OpenSearch index first (e.g. after changing the model)")
    output_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_push)
