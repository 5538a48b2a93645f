"""Build the Lambda package: ``python lambda/build.py --out dist/lambda.zip``.

``handler.py`` at the root (handler ``handler.handler``), the light lookalike modules, and the
pinned dependencies of ``lambda/requirements.txt`` installed for the Lambda runtime
(cp312 manylinux2014 x86_64 by default). boto3 is provided by the runtime; numpy, ONNX
Runtime and FAISS are never imported on this path.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from lookalike.artifacts.packaging import build_lambda_zip, prepare_lambda_deps, unzipped_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist/lambda.zip"))
    parser.add_argument("--deps-dir", type=Path, help="where the dependencies are (or get) installed")
    parser.add_argument("--python-version", default="3.12", help="Lambda runtime Python (3.11 or 3.12)")
    parser.add_argument("--deps-only", action="store_true", help="only install the dependencies into --deps-dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.deps_only:
        if not args.deps_dir:
            parser.error("--deps-only needs --deps-dir")
        prepare_lambda_deps(args.deps_dir, python_version=args.python_version)
        return 0
    out = build_lambda_zip(args.out, deps_dir=args.deps_dir, python_version=args.python_version)
    print(f"{out}  {out.stat().st_size / 1e6:.1f} MB zipped, {unzipped_size(out) / 1e6:.1f} MB unzipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
