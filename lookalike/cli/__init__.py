"""The ``lookalike`` command line: one subcommand per pipeline stage.

    local   index DIR, search IMAGE, serve, delete ID..., info, export-model
    cloud   cloud-upload DIR, cloud-index DIR, push --to opensearch, cloud-batch s3://..., cloud-batch-load
    eval    eval DATASET, train-triplet, train-classifier, fit-pca, export-dataset

Errors print one line (``lookalike: error: ...``) and exit 1; heavy libraries load only when
a command needs them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import LookalikeError
from . import cloud, cloud_batch, local
from . import eval as evaluation
from .options import model_options

logger = logging.getLogger("lookalike")


def build_parser() -> argparse.ArgumentParser:
    common = model_options()
    parser = argparse.ArgumentParser(prog="lookalike", description="Content-based image search.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (local, cloud, cloud_batch, evaluation):
        group.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("lookalike").setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        return args.func(args) or 0
    except LookalikeError as exc:
        print(f"lookalike: error: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # the environment, not a bug (a full disk, a permission): one line; -v for the trace
        logger.debug("%s failed", args.command, exc_info=True)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"lookalike: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lookalike: interrupted (the index keeps what was saved at the last checkpoint)", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]
