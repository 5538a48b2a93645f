"""Local-mode subcommands: index, search, serve, delete, info, export-model."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..index.breadth import (EF_SEARCH_LARGE, EF_SEARCH_MEDIUM, EF_SEARCH_MEDIUM_UP_TO, EF_SEARCH_SMALL,
                             EF_SEARCH_SMALL_UP_TO)
from ..errors import LookalikeError
from ..limits import DUPLICATE_THRESHOLD as DEFAULT_THRESHOLD
from .options import DEFAULTS, output_options, settings_from

logger = logging.getLogger("lookalike")


def cmd_index(args: argparse.Namespace) -> int:
    from ..collection import Collection

    settings = settings_from(args)
    report = Collection(settings=settings).add(args.folder, prune=args.prune, refit=args.refit,
                                               progress=not args.quiet and sys.stderr.isatty() or args.progress)
    post = getattr(report, "postprocess", None)
    if args.json:
        print(json.dumps({**report.to_dict(), **({"postprocess": post.to_dict()} if post else {})}, indent=2))
    else:
        changed = "".join(f", {what} {n}" for what, n in (("moved", report.moved), ("replaced", report.replaced)) if n)
        print(f"indexed {report.indexed}, skipped {report.skipped} (already indexed), failed {len(report.failed)}"
              + changed + (f", pruned {report.pruned}" if args.prune else "")
              + f" — {report.seconds:.1f}s, {report.images_per_second:.1f} img/s; index holds {report.total}"
              f" in {settings.index_dir}"
              + (f"; post-processing {post.kind}" + (f" refitted on {post.fitted_count} ({post.refitted})"
                                                     if post.refitted else "") if post and post.kind != "none" else ""))
        for path, reason in report.failed:
            print(f"  failed: {path}: {reason}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from ..fsutil import read_regular_file
    from ..search.local import build_local_service
    from ..search.schema import SearchRequest, parse_id, parse_k

    settings = settings_from(args)
    if (args.image is None) == (args.id is None):
        raise LookalikeError("give a query IMAGE or --id ID (an indexed entry), not both")
    data = None
    if args.image is not None:
        try:
            data = read_regular_file(args.image)  # a FIFO named *.png would block a plain read forever
        except OSError as exc:
            raise LookalikeError(f"cannot read {args.image}: {exc.strerror or exc}") from None
    service = build_local_service(settings)
    k = parse_k(args.k, service.limits)
    flt = {"label": args.label} if args.label else None
    request = SearchRequest(image=data, k=k, filter=flt) if data is not None else \
        SearchRequest(id=parse_id(args.id), k=k, filter=flt)
    response = service.search(request)
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


def cmd_dupes(args: argparse.Namespace) -> int:
    import csv
    import time

    from ..collection import Collection

    started = time.perf_counter()
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    if not 0 < threshold <= 1:
        raise LookalikeError(f"--threshold must be in (0, 1], got {threshold}")
    groups = Collection(settings=settings_from(args)).duplicates(threshold)
    shown = groups[:args.limit] if args.limit else groups
    if args.json:
        print(json.dumps({"threshold": threshold, "groups": [g.to_dict() for g in shown], "total": len(groups)},
                         indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["group", "kind", "size", "id", "label", "score", "path"])
        for g in shown:
            for m in g.members:
                writer.writerow([g.id, g.kind, g.size, m["id"], m["label"], m["score"], m["path"]])
    else:
        for g in shown:
            print(f"{g.kind} group of {g.size} ({g.id})")
            for m in g.members:
                print(f"  {m['score']:6.3f}  {str(m['label']):<16} {m['id']:<16}  {m['path']}")
        print(f"{len(groups)} groups at threshold {threshold} ({time.perf_counter() - started:.1f}s)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ..api.app import create_app
    from ..api.server import run
    from ..errors import BackendUnavailable

    settings = settings_from(args)
    app = create_app(settings)
    try:
        app.state.holder.get()  # load the model and index before accepting requests
    except BackendUnavailable as exc:  # no index yet: answer 503 until `lookalike index` saves one
        logger.warning("%s (the server starts anyway and retries on each request)", exc.message)
    print(f"lookalike serving {settings.index_dir} at http://{settings.host}:{settings.port}/", flush=True)
    run(app, settings)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from ..index.faiss_index import FaissIndex
    from ..index.faiss_store import writer_lock

    settings = settings_from(args)
    if not FaissIndex.exists(settings.index_dir):
        FaissIndex.load(settings.index_dir)  # the "no index" error, without making the folder
    # A running `lookalike index` would save over this deletion from its own copy: refuse instead.
    with writer_lock(settings.index_dir, "delete"):
        index = FaissIndex.load(settings.index_dir)
        removed = index.delete(args.ids)
        if removed:
            from ..index.postprocessing import record_changes

            record_changes(index, removed)  # counted towards the post-processing's refit
            index.save()
    print(f"deleted {removed} of {len(args.ids)}; index holds {len(index)}")
    return 0 if removed == len(args.ids) else 1


def cmd_info(args: argparse.Namespace) -> int:
    from collections import Counter

    from ..index.faiss_index import FaissIndex
    from ..index.faiss_params import search_params_from

    settings = settings_from(args)
    # With the search flags, so that "search" says how wide `lookalike search` would look.
    index = FaissIndex.load(settings.index_dir, **search_params_from(settings))
    info = index.info()
    info["labels"] = dict(sorted(Counter(m.get("label") for _, m in index.items()).items()))
    post = (info.get("model") or {}).get("postprocess")
    if post and "mean" in post:  # 1280 base64 floats say nothing to a reader; the digest names them
        info["model"] = {**info["model"], "postprocess": {k: v for k, v in post.items() if k != "mean"}}
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
    p.add_argument("--prune", action="store_true", help="also delete entries whose image no file under FOLDER has any more")
    p.add_argument("--refit", action="store_true",
                   help="fit the post-processing again on every entry (automatic once the entries changed since "
                        "the fit reach the number it was fitted on)")
    p.add_argument("--workers", type=int, help=f"decode/preprocess threads (default min(4, cores) = {DEFAULTS.workers})")
    g = p.add_argument_group("index structure (stored with a new index)")
    g.add_argument("--hnsw-threshold", type=int,
                   help=f"use HNSW from this many entries (default {DEFAULTS.hnsw_threshold}; 0 = never)")
    g.add_argument("--hnsw-m", type=int, help=f"HNSW neighbours per node (default {DEFAULTS.hnsw_m})")
    g.add_argument("--ef-construction", dest="hnsw_ef_construction", type=int,
                   help=f"HNSW build breadth (default {DEFAULTS.hnsw_ef_construction})")
    g.add_argument("--ef-search", dest="hnsw_ef_search", type=int,
                   help=f"HNSW search breadth (default 0: by size, {EF_SEARCH_SMALL} up to "
                        f"{EF_SEARCH_SMALL_UP_TO:,} entries, {EF_SEARCH_MEDIUM} up to "
                        f"{EF_SEARCH_MEDIUM_UP_TO:,}, {EF_SEARCH_LARGE} above)")
    g.add_argument("--hnsw-storage", choices=("sq8", "fp16", "flat"),
                   help=f"HNSW vector codes: 1, 2 or 4 bytes a dimension (default {DEFAULTS.hnsw_storage})")
    g.add_argument("--ivf-threshold", type=int,
                   help=f"use IVF over fp16 codes from this many entries (default {DEFAULTS.ivf_threshold}; 0 = never)")
    g.add_argument("--ivf-nprobe", type=int, help=f"fp16 IVF lists searched (default {DEFAULTS.ivf_nprobe})")
    g.add_argument("--ivfpq-threshold", type=int,
                   help=f"use IVF-PQ from this many entries (default {DEFAULTS.ivfpq_threshold}; 0 = never)")
    g.add_argument("--ivfpq-nprobe", type=int, help=f"IVF-PQ lists searched (default {DEFAULTS.ivfpq_nprobe})")
    g.add_argument("--index-compact-fraction", type=float,
                   help=f"rebuild when deleted entries pass this fraction (default {DEFAULTS.index_compact_fraction})")
    output_options(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", parents=[common], help="the K most similar indexed images")
    p.add_argument("image", type=Path, nargs="?", help="query image file")
    p.add_argument("--id", help="search with this indexed entry's stored vector instead (more like this)")
    p.add_argument("-k", type=int, default=DEFAULTS.k_default,
                   help=f"number of results (1..{DEFAULTS.k_max}, default {DEFAULTS.k_default})")
    p.add_argument("--label", help="only results with this label")
    p.add_argument("--json", action="store_true", help="print JSON (the API's response shape + paths)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("dupes", parents=[common], help="exact and near-duplicate groups, largest first",
                       description="Group exact duplicates (the same content under several paths) and near "
                                   "duplicates (cosine similarity >= THRESHOLD; groups are connected: A~B and "
                                   "B~C put A, B and C in one group), largest group first.")
    p.add_argument("--threshold", type=float, help=f"similarity for near duplicates (default {DEFAULT_THRESHOLD}, "
                                                    "calibrated in reports/duplicates)")
    p.add_argument("--limit", type=int, help="print only the first N groups")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="groups as JSON")
    out.add_argument("--csv", action="store_true", help="one row per member: group,kind,size,id,label,score,path")
    p.set_defaults(func=cmd_dupes)

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
