"""Batch ingest from S3: SageMaker Batch Transform, then a resumable bulk load into OpenSearch.

    lookalike cloud-batch s3://BUCKET/PREFIX/   list the images, skip what the index holds, start a
                                                transform job on the rest, show its progress, load it
    lookalike cloud-batch-load JOB              load (or resume loading) the outputs of a job

Settings come from ``LOOKALIKE_*`` variables (``terraform output batch_ingest_environment``,
exported by ``make ingest``) or flags, each stored under its setting's name.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys

from ..errors import BackendUnavailable, ConfigError, UpstreamError
from .options import DEFAULTS, cloud_options, output_options, settings_from


def _aws_errors(command):
    """An AWS call that fails (S3, SageMaker: refused, missing, unreachable) is one error line."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return command(args)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise UpstreamError(f"AWS refused {exc.operation_name}: {error.get('Code')}: {error.get('Message')}") from None
        except BotoCoreError as exc:
            raise BackendUnavailable(f"AWS could not be called: {exc}") from None
    return run


def _need(settings, *names: str) -> None:
    for name in names:
        if not getattr(settings, name):
            raise ConfigError(f"LOOKALIKE_{name.upper()} is not set (terraform output batch_ingest_environment, "
                              "or make ingest, sets it)")


def _open_index(settings):
    """The OpenSearch index, or None while it does not exist (the load creates it)."""
    from ..index.opensearch import OpenSearchIndex

    try:
        return OpenSearchIndex.from_settings(settings)
    except BackendUnavailable as exc:
        if exc.message.startswith("No OpenSearch index"):
            return None
        raise


def _creator(settings):
    from ..index.opensearch import OpenSearchIndex

    def create(dim: int, model: str):  # what cloud-index records for an endpoint's model
        return OpenSearchIndex.from_settings(settings, dim=dim, model={"name": model, "dim": dim, "fingerprint": None},
                                             create=True)
    return create


def _say(args, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def _wait(args, settings, sm, s3, job: str, paths: dict, total: int):
    from ..cloud.transform import wait_for_job

    return wait_for_job(sm, s3, job, paths["output"], total, poll=settings.transform_poll_seconds,
                        report=lambda p: _say(args, f"transform {job}: {p.status}, {p.done}/{p.total} objects done"
                                              + (f" ({p.failure})" if p.failure else "")))


def _load(args, settings, s3, sm, job: str) -> tuple[dict, int]:
    """Wait for the job to end, then load its outputs; → (summary, exit code)."""
    from ..cloud.transform import job_paths
    from ..cloud.transform_load import load_outputs, read_records

    paths = job_paths(settings.transform_prefix, job)
    header, records = read_records(s3, paths["records"])
    progress = _wait(args, settings, sm, s3, job, paths, header["count"])
    show = not args.quiet and (args.progress or sys.stderr.isatty())

    def tick(r) -> None:
        if show:
            print(f"load {job}: {r.total}/{header['count']} records, {r.loaded} loaded, {r.present} present, "
                  f"{len(r.failed)} failed", file=sys.stderr, flush=True)

    report = load_outputs(s3, records, bucket=header["bucket"], output=paths["output"], index=_open_index(settings),
                          create_index=_creator(settings), job=job, batch_size=settings.opensearch_bulk_size,
                          progress=tick)
    summary = {"job": job, "status": progress.status, "failure": progress.failure, "load": report.to_dict()}
    if not args.json:
        print(f"transform job {job} {progress.status}; loaded {report.loaded} of {report.total} "
              f"({report.present} already present), {len(report.failed)} failed — {report.seconds:.1f}s "
              f"into OpenSearch index {settings.opensearch_index!r}")
        _failures(report.failed)
    return summary, 0 if not report.failed else 1


def _failures(failed: list[tuple[str, str]], limit: int = 100) -> None:
    for key, reason in failed[:limit]:
        print(f"  failed: {key}: {reason}")
    if len(failed) > limit:
        print(f"  ... and {len(failed) - limit} more (--json lists them all)")


def _clients(settings):
    from ..cloud.aws import client, s3_client

    return s3_client(settings), client("sagemaker", settings)


@_aws_errors
def cmd_cloud_batch(args: argparse.Namespace) -> int:
    from ..cloud.transform import (S3Uri, check_input_allowed, job_name, job_paths, job_request, plan_batch,
                                   publish_images, write_manifest)
    from ..cloud.transform_load import existing_ids

    settings = settings_from(args)
    _need(settings, "transform_prefix", "transform_model", "opensearch_url")
    source = S3Uri.parse(args.folder, folder=True)
    check_input_allowed(settings, source)
    s3, sm = _clients(settings)
    index = _open_index(settings)
    plan = plan_batch(s3, source, images_bucket=settings.images_bucket, images_prefix=settings.images_prefix,
                      present=lambda ids: existing_ids(index, ids))
    out: dict = {"plan": plan.to_dict(), "job": None}
    _say(args, f"{source}: {plan.found} images, {len(plan.records)} new, {plan.present} already indexed, "
               f"{len(plan.duplicates)} duplicates, {len(plan.failed)} unreadable; ids from content-addressed keys "
               f"{plan.id_sources['key']}, S3 SHA-256 checksums {plan.id_sources['checksum']}, "
               f"hashed here {plan.id_sources['hashed']}")
    code = 0 if not plan.failed else 1
    if plan.records:
        if settings.images_bucket and not args.no_copy:
            copied = publish_images(s3, source.bucket, plan.records, settings.images_bucket, settings.images_prefix)
            _say(args, f"copied {copied} images to s3://{settings.images_bucket}/{settings.images_prefix} "
                       "(the search results link there)")
        job = args.job or job_name()
        paths = job_paths(settings.transform_prefix, job)
        write_manifest(s3, paths, plan, job)
        sm.create_transform_job(**job_request(settings, job, paths))
        out["job"] = {"name": job, **paths}
        _say(args, f"started transform job {job}: {len(plan.records)} images on {settings.transform_instance_count} "
                   f"x {settings.transform_instance_type}")
        if args.no_wait:
            _say(args, f"when it ends, load it: lookalike cloud-batch-load {job}")
        else:
            out["result"], load_code = _load(args, settings, s3, sm, job)
            code = max(code, load_code)
    if args.json:
        print(json.dumps(out, indent=2))
    elif not plan.records:
        print(f"nothing to embed: {plan.present} of {plan.found} images are indexed already")
    if not args.json:
        _failures(plan.failed)
    return code


@_aws_errors
def cmd_cloud_batch_load(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    _need(settings, "transform_prefix", "opensearch_url")
    s3, sm = _clients(settings)
    summary, code = _load(args, settings, s3, sm, args.job)
    if args.json:
        print(json.dumps(summary, indent=2))
    return code


def _batch_options(p: argparse.ArgumentParser, *, job: bool) -> None:
    g = p.add_argument_group("batch transform (defaults from LOOKALIKE_* environment variables)")
    g.add_argument("--transform-prefix", help="s3://BUCKET/PREFIX/ of the jobs' manifests and outputs")
    g.add_argument("--bulk-size", dest="opensearch_bulk_size", type=int,
                   help=f"documents per bulk request (default {DEFAULTS.opensearch_bulk_size})")
    g.add_argument("--poll-seconds", dest="transform_poll_seconds", type=float,
                   help=f"seconds between progress readings (default {DEFAULTS.transform_poll_seconds})")
    if job:
        g.add_argument("--transform-model", help="SageMaker model the job runs (the endpoint's archive)")
        g.add_argument("--instance-type", dest="transform_instance_type",
                       help=f"instance type (default {DEFAULTS.transform_instance_type})")
        g.add_argument("--instance-count", dest="transform_instance_count", type=int,
                       help=f"instances (default {DEFAULTS.transform_instance_count})")
        g.add_argument("--max-concurrent-transforms", dest="transform_max_concurrent", type=int,
                       help=f"parallel requests per instance (default {DEFAULTS.transform_max_concurrent})")
        g.add_argument("--max-payload-mb", dest="transform_max_payload_mb", type=int,
                       help=f"largest image in MB; times --max-concurrent-transforms at most 100 "
                            f"(default {DEFAULTS.transform_max_payload_mb})")
    output_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def register(subparsers, common: argparse.ArgumentParser) -> None:
    cloud = cloud_options()
    p = subparsers.add_parser(
        "cloud-batch", parents=[cloud], help="embed the images under an S3 prefix with a SageMaker Batch Transform "
                                             "job, then load them into OpenSearch",
        description="List the images under s3://BUCKET/PREFIX/ (label = the folder holding each), skip those the "
                    "OpenSearch index holds (content ids, see README), write a manifest of the rest, start a "
                    "Batch Transform job on the endpoint's model archive, show its progress and load its outputs.")
    p.add_argument("folder", metavar="s3://BUCKET/PREFIX/", help="where the images are")
    p.add_argument("--job-name", dest="job", help="name of the transform job (default lookalike-ingest-<UTC time>)")
    p.add_argument("--no-wait", action="store_true", help="start the job and return (load it with cloud-batch-load)")
    p.add_argument("--no-copy", action="store_true",
                   help="do not copy the images to their content-addressed keys in the images bucket")
    _batch_options(p, job=True)
    p.set_defaults(func=cmd_cloud_batch)

    p = subparsers.add_parser("cloud-batch-load", parents=[cloud],
                              help="load (or resume loading) a transform job's outputs into OpenSearch",
                              description="Wait for the job to end, then upsert the vectors of its outputs that "
                                          "the index lacks; safe to run again after an interruption.")
    p.add_argument("job", help="the transform job's name (printed by cloud-batch)")
    _batch_options(p, job=False)
    p.set_defaults(func=cmd_cloud_batch_load)
