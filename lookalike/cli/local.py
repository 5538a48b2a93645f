"""Local-mode subcommands: index, search, serve, delete, info, export-model."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..errors import LookalikeError
from .options import DEFAULTS, output_options, settings_from

logger = logging.getLogger("lookalike")


def cmd_index(args: argparse.Namespace) -> int:
    from ..embedders import embedder_from_settings
    from ..fsutil import file_lock
    from ..index import open_index
    from ..index.ingest import ingest_folder
    from ..search.compat import check_compatible, model_info

    settings = settings_from(args)
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
    from ..search.schema import SearchRequest, parse_k
    from ..search.local import build_local_service

    settings = settings_from(args)
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

    from ..api.app import create_app

    settings = settings_from(args)
    app = create_app(settings)
    try:
        app.state.holder.get()  # load the model and index before accepting requests
    except LookalikeError as exc:
        logger.warning("%s (the server starts anyway and retries on each request)", exc.message)
    print(f"lookalike serving {settings.index_dir} at http://{settings.host}:{settings.port}/", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from ..index.faiss_index import FaissIndex

    settings = settings_from(args)
    index = FaissIndex.load(settings.index_dir)
    removed = index.delete(args.ids)
    if removed:
        index.save()
    print(f"deleted {removed} of {len(args.ids)}; index holds {len(index)}")
    return 0 if removed == len(args.ids) else 1


def cmd_info(args: argparse.Namespace) -> int:
    from collections import Counter

    from ..index.faiss_index import FaissIndex

    settings = settings_from(args)
    index = FaissIndex.load(settings.index_dir)
    info = index.info()
    info["labels"] = dict(sorted(Counter(m.get("label") for _, m in index.items()).items()))
    print(json.dumps(info, indent=2, default=str))
    return 0


def cmd_export_model(args: argparse.Namespace) -> int:
    from ..embedders.export import ensure_onnx

    settings = settings_from(args)
    print(ensure_onnx(settings.backbone, settings.cache_dir, settings.weights))
    return 0


def register(sub, common: argparse.ArgumentParser) -> None:

    p = sub.add_parser("index", parents=[common], help="embed a folder of images into the index")
    p.add_argument("folder", type=Path, help="folder of images; each image's label is its parent folder's name")
    p.add_argument("--prune", action="store_true", help="also delete entries whose file under FOLDER is gone")
    p.add_argument("--workers", type=int, help=f"decode/preprocess threads (default min(4, cores) = {DEFAULTS.workers})")
    g = p.add_argument_group("index structure (stored with a new index)")
    g.add_argument("--hnsw-threshold", type=int,
                   help=f"use HNSW from this many entries (default {DEFAULTS.hnsw_threshold}; 0 = never)")
    g.add_argument("--hnsw-m", type=int, help=f"HNSW neighbours per node (default {DEFAULTS.hnsw_m})")
    g.add_argument("--ef-construction", dest="hnsw_ef_construction", type=int,
                   help=f"HNSW build breadth (default {DEFAULTS.hnsw_ef_construction})")
    g.add_argument("--ef-search", dest="hnsw_ef_search", type=int,
                   help=f"HNSW search breadth (default {DEFAULTS.hnsw_ef_search})")
    output_options(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common], help="the K most similar indexed images")
    p.add_argument("image", type=Path)
    p.add_argument("-k", type=int, default=DEFAULTS.k_default,
                   help=f"number of results (1..{DEFAULTS.k_max}, default {DEFAULTS.k_default})")
    p.add_argument("--label", help="only results with this label")
    p.add_argument("--json", action="store_true", help="print JSON (the API's response shape + paths)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("serve", parents=[common], help="HTTP API and web page")
    p.add_argument("--host", help=f"bind address (default {DEFAULTS.host})")
    p.add_argument("--port", type=int, help=f"port (default {DEFAULTS.port})")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("delete", parents=[common], help="remove entries by id")
    p.add_argument("ids", nargs="+")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("info", parents=[common], help="what the index holds")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export-model", parents=[common], help="export the backbone to ONNX and print its path")
    p.set_defaults(func=cmd_export_model)
