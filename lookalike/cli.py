"""The ``lookalike`` command line: one subcommand per pipeline stage.

    lookalike index DIR        embed a folder of images into the index
    lookalike search IMAGE     the K most similar indexed images
    lookalike serve            HTTP API + web page on 127.0.0.1
    lookalike delete ID...     remove entries
    lookalike info             what the index holds
    lookalike export-model     export a backbone to ONNX (cached) and print its path

Errors print one line (``lookalike: error: ...``) and exit 1; heavy libraries load only when
a command needs them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from .config import Settings
from .errors import LookalikeError

logger = logging.getLogger("lookalike")

# Modules adding subcommands; each defines ``register(subparsers, common)``.
PLUGINS: list[str] = ["lookalike.cloud.commands", "lookalike.index.push", "lookalike.eval_cli"]


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("index and model")
    g.add_argument("--index-dir", type=Path, help="index folder (env LOOKALIKE_INDEX_DIR)")
    g.add_argument("--backbone", help="efficientnet-lite2 (default), efficientnet-lite0..4, resnet50")
    g.add_argument("--weights", help="weights file for the backbone (e.g. a torchvision ResNet50 .pth)")
    g.add_argument("--model", type=Path, help="custom ONNX feature extractor; preprocessing spec in MODEL.json")
    g.add_argument("--head", type=Path, help="ONNX head applied after the backbone (e.g. a triplet head)")
    g.add_argument("--classifier", type=Path,
                   help="classifier .npz (lookalike train-classifier): search only within the predicted class")
    g.add_argument("--batch-size", type=int, help="images per inference batch (default 16)")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return common


def _settings(args: argparse.Namespace, **extra) -> Settings:
    overrides = {
        "index_dir": getattr(args, "index_dir", None), "backbone": getattr(args, "backbone", None),
        "model": getattr(args, "model", None), "head": getattr(args, "head", None),
        "classifier": getattr(args, "classifier", None),
        "batch_size": getattr(args, "batch_size", None),
        "weights": Path(args.weights) if getattr(args, "weights", None) else None,
    }
    return Settings.from_env(**overrides, **extra)


def cmd_index(args: argparse.Namespace) -> int:
    from .embedders import embedder_from_settings
    from .fsutil import file_lock
    from .index import open_index
    from .ingest import ingest_folder
    from .service import check_compatible, model_info

    settings = _settings(args, workers=args.workers, hnsw_threshold=args.hnsw_threshold, hnsw_m=args.hnsw_m,
                         hnsw_ef_construction=args.ef_construction, hnsw_ef_search=args.ef_search)
    embedder = embedder_from_settings(settings, bulk=True)
    index = open_index("faiss", settings=settings, dim=embedder.dim, model=model_info(embedder), create=True)
    check_compatible(embedder, index)
    try:
        lock = file_lock(Path(settings.index_dir) / ".ingest.lock", blocking=False)
        lock.__enter__()
    except BlockingIOError:
        raise LookalikeError(f"another `lookalike index` is writing {settings.index_dir}; wait for it") from None
    try:
        report = ingest_folder(args.folder, index, embedder, batch_size=settings.batch_size,
                               workers=settings.workers, max_pixels=settings.max_image_pixels, prune=args.prune,
                               progress=not args.quiet and sys.stderr.isatty() or args.progress)
    finally:
        lock.__exit__(None, None, None)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"indexed {report.indexed}, skipped {report.skipped} (already indexed), failed {len(report.failed)}"
              + (f", pruned {report.pruned}" if args.prune else "")
              + f" — {report.seconds:.1f}s, {report.images_per_second:.1f} img/s; index holds {len(index)}"
              f" in {settings.index_dir}")
        for path, reason in report.failed:
            print(f"  failed: {path}: {reason}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .schema import SearchRequest, parse_k
    from .service import build_local_service

    settings = _settings(args)
    try:
        data = Path(args.image).read_bytes()
    except OSError as exc:
        raise LookalikeError(f"cannot read {args.image}: {exc.strerror or exc}") from None
    service = build_local_service(settings)
    k = parse_k(args.k, service.limits)
    flt = {"label": args.label} if args.label else None
    response = service.search(SearchRequest(image=data, k=k, filter=flt))
    if args.json:
        out = response.to_dict()
        for r in out["results"]:
            r["path"] = (service.index.get(r["id"]) or {}).get("path")
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'rank':>4}  {'score':>6}  {'label':<16} {'id':<16}  path")
    for rank, r in enumerate(response.results, 1):
        path = (service.index.get(r.id) or {}).get("path", "")
        print(f"{rank:>4}  {r.score:6.3f}  {str(r.label):<16} {r.id:<16}  {path}")
    predicted = f"; predicted class {response.predicted_label}" if response.predicted_label else ""
    print(f"({response.took_ms:.1f} ms{predicted})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api import create_app

    settings = _settings(args, host=args.host, port=args.port)
    app = create_app(settings)
    try:
        app.state.holder.get()  # load the model and index before accepting requests
    except LookalikeError as exc:
        logger.warning("%s (the server starts anyway and retries on each request)", exc.message)
    print(f"lookalike serving {settings.index_dir} at http://{settings.host}:{settings.port}/", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from .index.faiss_index import FaissIndex

    settings = _settings(args)
    index = FaissIndex.load(settings.index_dir)
    removed = index.delete(args.ids)
    if removed:
        index.save()
    print(f"deleted {removed} of {len(args.ids)}; index holds {len(index)}")
    return 0 if removed == len(args.ids) else 1


def cmd_info(args: argparse.Namespace) -> int:
    from collections import Counter

    from .index.faiss_index import FaissIndex

    settings = _settings(args)
    index = FaissIndex.load(settings.index_dir)
    info = index.info()
    info["labels"] = dict(sorted(Counter(m.get("label") for _, m in index.items()).items()))
    print(json.dumps(info, indent=2, default=str))
    return 0


def cmd_export_model(args: argparse.Namespace) -> int:
    from .embedders.export import ensure_onnx

    settings = _settings(args)
    print(ensure_onnx(settings.backbone, settings.cache_dir, settings.weights))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="lookalike", description="Content-based image search.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("index", parents=[common], help="embed a folder of images into the index")
    p.add_argument("folder", type=Path, help="folder of images; each image's label is its parent folder's name")
    p.add_argument("--prune", action="store_true", help="also delete entries whose file under FOLDER is gone")
    p.add_argument("--workers", type=int, help="decode/preprocess threads (default: min(4, cores))")
    g = p.add_argument_group("index structure (stored with a new index)")
    g.add_argument("--hnsw-threshold", type=int, help="use HNSW from this many entries (default 10000; 0 = never)")
    g.add_argument("--hnsw-m", type=int, help="HNSW neighbours per node (default 32)")
    g.add_argument("--ef-construction", type=int, help="HNSW build breadth (default 200)")
    g.add_argument("--ef-search", type=int, help="HNSW search breadth (default 128)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common], help="the K most similar indexed images")
    p.add_argument("image", type=Path)
    p.add_argument("-k", type=int, default=5, help="number of results (1..100, default 5)")
    p.add_argument("--label", help="only results with this label")
    p.add_argument("--json", action="store_true", help="print JSON (the API's response shape + paths)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("serve", parents=[common], help="HTTP API and web page")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("delete", parents=[common], help="remove entries by id")
    p.add_argument("ids", nargs="+")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("info", parents=[common], help="what the index holds")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export-model", parents=[common], help="export the backbone to ONNX and print its path")
    p.set_defaults(func=cmd_export_model)

    for name in PLUGINS:
        importlib.import_module(name).register(sub, common)
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
    except KeyboardInterrupt:
        print("lookalike: interrupted (the index keeps what was saved at the last checkpoint)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
