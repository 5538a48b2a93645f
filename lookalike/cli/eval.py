"""Evaluation and training subcommands.

    lookalike eval DATASET            compare the approaches; write reports/NAME
    lookalike train-triplet DATASET   train a triplet head on the train split → NAME.onnx
    lookalike train-classifier DATA   fit a kNN / logistic-regression classifier → NAME.npz
    lookalike fit-pca DATASET         fit PCA on the train split → an ONNX head
    lookalike export-dataset DATASET  write a built-in dataset as class folders of PNGs

DATASET is ``fashion-mnist``, ``tuxpaint`` or a folder of class folders.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from .options import settings_from


def _split_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data split")
    g.add_argument("dataset", help="fashion-mnist, tuxpaint, or a folder of class folders")
    g.add_argument("--seed", type=int, default=0, help="seed of every split and of training (default 0)")
    g.add_argument("--test-fraction", type=float, default=0.5,
                   help="folder datasets: share of each class in the test split (default 0.5)")
    g.add_argument("--val-fraction", type=float, default=0.15,
                   help="share of the train split held out to choose epochs, k and C (default 0.15)")
    g.add_argument("--train-limit", type=int, help="use a stratified sample of this many training images")
    g.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")


def _triplet_args(p: argparse.ArgumentParser) -> None:
    from ..eval.triplet_config import MININGS, TripletConfig

    d = TripletConfig()
    g = p.add_argument_group("triplet head")
    g.add_argument("--epochs", type=int, default=d.epochs, help=f"at most (default {d.epochs}; the best "
                                                                  "epoch on the validation split is kept)")
    g.add_argument("--dim", type=int, default=d.dim_out, help=f"output dimension of the head (default {d.dim_out})")
    g.add_argument("--margin", type=float, default=d.margin, help=f"default {d.margin}")
    g.add_argument("--mining", choices=MININGS, default=d.mining, help=f"default {d.mining}")
    g.add_argument("--classes-per-batch", type=int, default=d.classes_per_batch,
                   help=f"P of a PK batch (default {d.classes_per_batch})")
    g.add_argument("--per-class", type=int, default=d.per_class, help=f"K of a PK batch (default {d.per_class})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")


def _triplet_config(args):
    from ..eval.triplet_config import TripletConfig

    return TripletConfig(dim_out=args.dim, epochs=args.epochs, margin=args.margin, mining=args.mining,
                         classes_per_batch=args.classes_per_batch, per_class=args.per_class, lr=args.lr,
                         seed=args.seed)


def _need(*modules: str) -> None:
    """A clear error, not a traceback, when an optional dependency is missing."""
    import importlib.util

    from ..errors import ConfigError

    extras = {"torch": "export", "onnx": "export", "sklearn": "eval", "matplotlib": "eval"}
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        wanted = sorted({extras[m] for m in missing})
        raise ConfigError(f"this command needs {', '.join(missing)}: pip install 'lookalike[{','.join(wanted)}]'")


def _progress(args) -> bool:
    return bool(args.progress or sys.stderr.isatty())


def _train_data(args, settings, *, head: bool):
    """Train-split vectors (through the configured head when ``head``) split into fit / validation."""
    from ..eval.datasets import stratified_split, train_test
    from ..embedders import embedder_from_settings
    from ..eval.features import extract

    splits = train_test(args.dataset, seed=args.seed, test_fraction=args.test_fraction,
                        train_limit=args.train_limit, datasets_dir=settings.datasets_dir)
    print(f"{args.dataset}: {splits.description}", flush=True)
    backbone = embedder_from_settings(settings.replace(head=None, classifier=None))
    x = extract(splits.train, backbone, cache_dir=settings.cache_dir, workers=settings.workers,
                progress=_progress(args))
    name = backbone.name
    if head and settings.head:
        from ..embedders.heads import apply_head

        x, name = apply_head(settings.head, x), f"{backbone.name}+{Path(settings.head).stem}"
    labels = list(splits.train.labels)
    fit, val = stratified_split(labels, args.val_fraction, args.seed + 1)
    return splits, backbone, name, x, labels, fit, val


def _out_path(out: Path, suffix: str) -> Path:
    out = Path(out)
    return out if out.suffix == suffix else out.with_name(out.name + suffix)


def cmd_train_triplet(args) -> int:
    import numpy as np

    from ..eval.triplet import export_head, train_head

    _need("torch", "onnx")
    settings = settings_from(args)
    splits, backbone, _, x, labels, fit, val = _train_data(args, settings, head=False)
    labels = np.asarray(labels, dtype=str)
    print(f"training on {len(fit)} images, validating on {len(val)}", flush=True)
    result = train_head(x[fit], labels[fit], _triplet_config(args), val_features=x[val], val_labels=labels[val],
                        progress=_progress(args), log=lambda line: print(line, flush=True))
    path = export_head(result, _out_path(args.out, ".onnx"),
                       {"backbone": backbone.name, "trained_on": str(args.dataset), "n_train": int(len(fit))})
    card = path.with_suffix(".train.json")
    card.write_text(json.dumps({"dataset": str(args.dataset), "split": splits.description,
                                "backbone": backbone.name, **result.summary()}, indent=2))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; best epoch {result.best_epoch}) and {card}")
    print(f"use it: lookalike index DIR --head {path}   /   lookalike serve --head {path}")
    return 0


def cmd_train_classifier(args) -> int:
    import numpy as np

    from ..eval.classifiers import fit_classifier

    _need("sklearn")
    settings = settings_from(args)
    _, _, model, x, labels, fit, val = _train_data(args, settings, head=True)
    labels = np.asarray(labels, dtype=str)
    clf = fit_classifier(x[fit], labels[fit], args.kind, k=args.k, c=args.c, val_vectors=x[val],
                         val_labels=labels[val], model=model, seed=args.seed)
    path = clf.save(_out_path(args.out, ".npz"))
    chosen = f"k={clf.params['k']}" if args.kind == "knn" else f"C={clf.params['c']}"
    print(f"wrote {path} ({args.kind}, {chosen}, {len(clf.classes)} classes, validation accuracy "
          f"{clf.params.get('val_accuracy', float('nan')):.3f})")
    print(f"use it: lookalike serve --classifier {path}" + (f" --head {settings.head}" if settings.head else ""))
    return 0


def cmd_fit_pca(args) -> int:
    from ..eval.pca import fit_pca

    _need("onnx")
    settings = settings_from(args)
    _, backbone, _, x, _, _, _ = _train_data(args, settings, head=False)
    pca = fit_pca(x, args.dim)
    path = pca.export_onnx(_out_path(args.out, ".onnx"), {"backbone": backbone.name, "trained_on": str(args.dataset)})
    print(f"wrote {path}: PCA {backbone.dim} → {args.dim}, explained variance "
          f"{pca.explained_variance_ratio.sum():.3f}")
    print(f"use it: lookalike index DIR --head {path}")
    return 0


def cmd_export_dataset(args) -> int:
    from ..eval.datasets import export_images, fashion_mnist, open_dataset, stratified_sample

    settings = settings_from(args)
    ds = (fashion_mnist(args.split, datasets_dir=settings.datasets_dir) if args.dataset == "fashion-mnist"
          else open_dataset(args.dataset, datasets_dir=settings.datasets_dir))
    if args.limit:
        ds = ds.subset(stratified_sample(ds.labels, args.limit, args.seed))
    written = export_images(ds, args.out)
    print(f"wrote {written} new images ({len(ds)} in all, {len(ds.classes)} classes) to {args.out}")
    return 0


def cmd_eval(args) -> int:
    from ..eval.comparison import APPROACHES, EvalOptions, run_comparison
    from ..eval.report import write_report

    _need("torch", "onnx", "sklearn", "matplotlib")
    settings = settings_from(args)
    if not args.verbose:  # one "saved" line per gallery index is noise here
        logging.getLogger("lookalike.index").setLevel(logging.WARNING)
    approaches = tuple(a.strip() for a in args.approaches.split(",") if a.strip()) if args.approaches else APPROACHES
    dims = tuple(int(d) for d in args.pca_dims.split(","))
    options = EvalOptions(approaches=approaches, seed=args.seed, test_fraction=args.test_fraction,
                          val_fraction=args.val_fraction, train_limit=args.train_limit, test_limit=args.limit,
                          pca_dims=dims, pca_main=args.pca_main if args.pca_main in dims else dims[0],
                          timing_queries=args.timing_queries, timing_images=args.timing_images,
                          by_class=not args.no_by_class, whole=not args.no_whole,
                          variants=_variants(args.variants))
    options = replace(options, triplet=_triplet_config(args))
    out = Path(args.out or Path("reports") / Path(str(args.dataset)).name)
    results = run_comparison(args.dataset, settings, options, models_out=args.models_out,
                             log=lambda line: print(line, flush=True), progress=_progress(args))
    results["include_self"] = bool(args.include_self)
    results["command"] = _command(args, out)
    for path in write_report(results, out):
        print(f"wrote {path}")
    return 0


def _variants(text: str | None) -> tuple[str, ...]:
    from ..eval.postprocess_variants import SPATIAL, VARIANTS

    if text is None:
        return VARIANTS + SPATIAL
    return () if text.strip() == "none" else tuple(v.strip() for v in text.split(",") if v.strip())


def register(sub, common) -> None:
    p = sub.add_parser("eval", parents=[common], help="compare backbone, triplet head, two-step and PCA search")
    _split_args(p)
    g = p.add_argument_group("evaluation")
    g.add_argument("--approaches", help="comma-separated subset of backbone,triplet,knn,logreg,pca (default all)")
    g.add_argument("--out", type=Path, help="report folder (default reports/DATASET)")
    g.add_argument("--include-self", action="store_true",
                   help="headline table with the query kept in its own results (the original's protocol); "
                        "both protocols are always reported")
    g.add_argument("--limit", type=int, help="use a stratified sample of this many test images")
    g.add_argument("--pca-dims", default="64,128,256,512", help="PCA sizes to compare (default 64,128,256,512)")
    g.add_argument("--pca-main", type=int, default=128, help="PCA size shown in the headline table (default 128)")
    g.add_argument("--timing-queries", type=int, default=200, help="queries timed for search p50 (default 200)")
    g.add_argument("--timing-images", type=int, default=100, help="images timed for embedding p50 (default 100)")
    g.add_argument("--no-by-class", action="store_true", help="skip the split by class")
    g.add_argument("--no-whole", action="store_true", help="skip the whole-dataset backbone run")
    g.add_argument("--variants", help="label-free post-processing variants fitted on the test gallery, comma-separated "
                                      "(default all: pn,center,power-center,pw256-0,pw256-0.25,pw256-0.5,pw256-1,"
                                      "pc-dba3,pc-qe2,pc-dba3-qe2,gem3,multiscale; none: skip)")
    g.add_argument("--models-out", type=Path, help="also save the trained triplet head, PCA head and "
                                                   "logistic-regression classifier here")
    _triplet_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-triplet", parents=[common], help="train a triplet head on a dataset's train split")
    _split_args(p)
    p.add_argument("--out", type=Path, required=True, help="output path; .onnx is added (e.g. models/NAME)")
    _triplet_args(p)
    p.set_defaults(func=cmd_train_triplet)

    p = sub.add_parser("train-classifier", parents=[common],
                       help="fit the classifier of two-step search (classify, then search that class)")
    _split_args(p)
    p.add_argument("--out", type=Path, required=True, help="output path; .npz is added")
    p.add_argument("--kind", choices=("knn", "logreg"), default="knn")
    p.add_argument("-k", type=int, help="kNN neighbours (default: chosen on the validation split)")
    p.add_argument("-c", type=float, help="logistic-regression C (default: chosen on the validation split)")
    p.set_defaults(func=cmd_train_classifier)

    p = sub.add_parser("fit-pca", parents=[common], help="fit PCA on a dataset's train split → an ONNX head")
    _split_args(p)
    p.add_argument("--out", type=Path, required=True, help="output path; .onnx is added")
    p.add_argument("--dim", type=int, default=128, help="components to keep (default 128)")
    p.set_defaults(func=cmd_fit_pca)

    p = sub.add_parser("export-dataset", help="write a dataset as class folders of PNGs (for lookalike index)")
    p.add_argument("dataset", help="fashion-mnist, tuxpaint or a folder")
    p.add_argument("out", type=Path)
    p.add_argument("--split", choices=("train", "test"), default="test", help="fashion-mnist split (default test)")
    p.add_argument("--limit", type=int, help="a stratified sample of this many images")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_export_dataset)


def _command(args, out: Path) -> str:
    """The command line that reproduces a report (options left at their defaults are omitted)."""
    parts = ["lookalike", "eval", str(args.dataset), "--out", str(out)]
    for flag, value, default in (("--backbone", args.backbone, None), ("--approaches", args.approaches, None),
                                 ("--seed", args.seed, 0), ("--train-limit", args.train_limit, None),
                                 ("--limit", args.limit, None), ("--test-fraction", args.test_fraction, 0.5),
                                 ("--epochs", args.epochs, 30), ("--mining", args.mining, "semi-hard"),
                                 ("--models-out", args.models_out, None), ("--variants", args.variants, None),
                                 ("--engine", args.engine, None), ("--precision", args.precision, None)):
        if value is not None and value != default:
            parts += [flag, str(value)]
    if args.include_self:
        parts.append("--include-self")
    return " ".join(shlex.quote(p) for p in parts)
