"""The comparison behind ``lookalike eval``: every approach on the same test split.

1. backbone features; 2. backbone + triplet head; 3. two-step (kNN or logistic-regression
classifier, then search within the predicted class); 4. backbone + PCA at several sizes.
Trained parts are fitted on the train split (a validation split carved out of it picks epochs
and k); the test split is the gallery and the queries. Then two more views: a split by CLASS
(classes never seen in training) and the plain backbone over the whole dataset.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import class_split, indices_of, stratified_split, train_test
from ..errors import ConfigError
from .evaluate import Gallery, evaluate_approach, time_approaches
from .postprocess_variants import SPATIAL, VARIANTS
from .triplet import TripletConfig

logger = logging.getLogger(__name__)

APPROACHES = ("backbone", "triplet", "knn", "logreg", "pca")


@dataclass(frozen=True)
class EvalOptions:
    approaches: tuple[str, ...] = APPROACHES
    seed: int = 0
    test_fraction: float = 0.5  # folder datasets: share of each class in the test split
    val_fraction: float = 0.15  # share of the train split held out to pick epochs / k
    unseen_fraction: float = 0.5  # split by class: share of classes never seen in training
    train_limit: int | None = None
    test_limit: int | None = None
    pca_dims: tuple[int, ...] = (64, 128, 256, 512)
    pca_main: int = 128
    timing_queries: int = 200
    timing_images: int = 100
    by_class: bool = True
    whole: bool = True
    # Label-free post-processing variants fitted on the test gallery (lookalike.eval.postprocess_variants).
    variants: tuple[str, ...] = VARIANTS + SPATIAL
    triplet: TripletConfig = field(default_factory=TripletConfig)

    def validate(self) -> None:
        unknown = sorted(set(self.approaches) - set(APPROACHES))
        if unknown:
            raise ConfigError(f"unknown approaches {', '.join(unknown)}; choose from {', '.join(APPROACHES)}")
        unknown = sorted(set(self.variants) - set(VARIANTS + SPATIAL))
        if unknown:
            raise ConfigError(f"unknown post-processing variants {', '.join(unknown)}; choose from "
                              f"{', '.join(VARIANTS + SPATIAL)}")
        if "pca" in self.approaches and self.pca_main not in self.pca_dims:
            raise ConfigError(f"the PCA size in the main table ({self.pca_main}) must be one of {self.pca_dims}")
        self.triplet.validate()


class Run:
    """Shared state of one evaluation: embedder factory, workdir, log, where models are kept."""

    def __init__(self, settings, options: EvalOptions, workdir: Path, *, stem: str, models_out: Path | None,
                 log: Callable[[str], None], progress: bool):
        from ..embedders import embedder_from_settings

        self.head = Path(settings.head) if settings.head else None  # a user's head: one more approach
        self.settings = settings.replace(head=None, classifier=None)
        self.options, self.workdir, self.stem = options, workdir, stem
        self.models_out, self.log, self.progress = models_out, log, progress
        self.backbone = embedder_from_settings(self.settings)

    def embedder(self, head: Path | None):
        from ..embedders import embedder_from_settings

        return embedder_from_settings(self.settings.replace(head=head, batch_size=1))

    def features(self, dataset) -> np.ndarray:
        from .features import extract

        return extract(dataset, self.backbone, cache_dir=self.settings.cache_dir, batch_size=64,
                       workers=self.settings.workers, progress=self.progress)

    def keep(self, path: Path, name: str) -> None:
        if self.models_out is not None:
            self.models_out.mkdir(parents=True, exist_ok=True)
            (self.models_out / name).write_bytes(Path(path).read_bytes())
            self.log(f"saved {self.models_out / name}")


def _gallery(run: Run, dataset) -> Gallery:
    rows = np.random.default_rng(run.options.seed).permutation(len(dataset))
    return Gallery(list(dataset.labels), dataset, rows[:max(run.options.timing_queries, 1)], run.workdir)


def _fit_val(labels: list[str], run: Run) -> tuple[np.ndarray, np.ndarray]:
    return stratified_split(labels, run.options.val_fraction, run.options.seed + 1)


def _approaches(run: Run, train, train_x, gallery: Gallery, test_x, *, tag: str, timing: bool,
                names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate ``names`` on one gallery → ``(results by name, training facts)``."""
    from ..embedders.heads import apply_head
    from .pca import fit_pca
    from .triplet import export_head, train_head
    from ..search.twostep import Classifier
    from .classifiers import fit_classifier

    o, backbone = run.options, run.backbone
    labels = np.asarray(train.labels, dtype=str)
    fit, val = _fit_val(train.labels, run)
    out: dict[str, Any] = {}
    facts: dict[str, Any] = {"n_fit": int(len(fit)), "n_val": int(len(val)), "n_gallery": len(gallery.labels)}
    base = f"{backbone.name} {backbone.dim}"

    def ev(name, title, vectors, **kw):
        run.log(f"[{tag}] evaluating {title} on {len(gallery.labels)} images")
        out[name] = evaluate_approach(gallery, name, title, vectors, timing=timing, **kw)

    if "backbone" in names:
        ev("backbone", base, test_x)
    if "triplet" in names:
        run.log(f"[{tag}] training the triplet head on {len(fit)} images ({len(val)} for validation)")
        trained = train_head(train_x[fit], labels[fit], o.triplet, val_features=train_x[val],
                             val_labels=labels[val], progress=run.progress, log=run.log)
        path = run.workdir / f"{tag}-triplet.onnx"
        export_head(trained, path, {"backbone": backbone.name, "trained_on": train.name, "n_train": int(len(fit))})
        facts["triplet"] = trained.summary()
        ev("triplet", f"{base} + triplet head {o.triplet.dim_out}", apply_head(path, test_x), head=path)
        if tag == "main":
            run.keep(path, f"{run.stem}-triplet.onnx")
    dims = [d for d in o.pca_dims if d <= min(len(train_x), train_x.shape[1])]
    if "pca" in names and dims:  # a small split (e.g. the demo's split by class) may fit no PCA size
        pca = fit_pca(train_x, max(dims))
        facts["pca"] = []
        for d in dims:
            path = run.workdir / f"{tag}-pca-{d}.onnx"
            pca.truncate(d).export_onnx(path, {"backbone": backbone.name, "trained_on": train.name})
            name = "pca" if d == o.pca_main else f"pca-{d}"
            ev(name, f"{base} + PCA {d}", apply_head(path, test_x), head=path)
            out[name].extra["explained_variance"] = round(float(pca.explained_variance_ratio[:d].sum()), 4)
            facts["pca"].append(name)
            if tag == "main" and d == o.pca_main:
                run.keep(path, f"{run.stem}-pca-{d}.onnx")
    for kind, label in (("knn", "kNN"), ("logreg", "LogReg")):
        if kind in names:
            clf = fit_classifier(train_x[fit], labels[fit], kind, val_vectors=train_x[val], val_labels=labels[val],
                                 model=backbone.name, seed=o.seed)
            path = clf.save(run.workdir / f"{tag}-{kind}.npz")
            clf = Classifier.load(path)  # evaluate exactly what a user would ship
            what = f"{label} classifier" + (f" (k={clf.params['k']})" if kind == "knn" else "")
            facts[kind] = {k: v for k, v in clf.params.items() if k != "model"}
            ev(kind, f"{what} + {backbone.name} search", test_x, classifier=clf)
            if tag == "main" and kind == "logreg":
                run.keep(path, f"{run.stem}-logreg.npz")
    if "head" in names and run.head is not None:
        ev("head", f"{base} + {run.head.stem}", apply_head(run.head, test_x), head=run.head)
    return out, facts


def run_comparison(spec: str | Path, settings, options: EvalOptions = EvalOptions(), *,
                   models_out: Path | None = None, log: Callable[[str], None] = logger.info,
                   progress: bool = False) -> dict[str, Any]:
    """Run every view of the comparison → a JSON-ready dict (see :mod:`lookalike.eval.report`)."""
    from .datasets import concat

    options.validate()
    splits = train_test(spec, seed=options.seed, test_fraction=options.test_fraction,
                        train_limit=options.train_limit, test_limit=options.test_limit,
                        datasets_dir=settings.datasets_dir)
    log(f"dataset {spec}: {splits.description}")
    with tempfile.TemporaryDirectory(prefix="lookalike-eval-") as tmp:
        run = Run(settings, options, Path(tmp), stem=Path(str(spec)).name, models_out=models_out, log=log,
                  progress=progress)
        train_x, test_x = run.features(splits.train), run.features(splits.test)
        names = options.approaches
        gallery = _gallery(run, splits.test)
        main, facts = _approaches(run, splits.train, train_x, gallery, test_x, tag="main", timing=True,
                                  names=names + ("head",))
        variants, post = {}, {}
        if options.variants:
            from .copy_benchmark import postprocess_view

            variants, post = postprocess_view(run, spec, splits.test, test_x, gallery, options.variants,
                                              limit=options.test_limit)
        log(f"[main] timing every approach: {options.timing_images} images embedded, "
            f"{len(gallery.timing_rows)} queries searched, one at a time")
        # The post-processing variants in the same round-robin: their time is comparable to the others'.
        time_approaches(gallery, list(main.values()) + list(variants.values()), run.embedder, options.timing_images)
        if variants:
            post["results"] = {k: v.to_dict() for k, v in variants.items()}
        result: dict[str, Any] = {
            "dataset": str(spec), "split": splits.description, "backbone": run.backbone.name,
            "backbone_dim": run.backbone.dim, "options": _options_dict(options),
            "classes": sorted(set(splits.test.labels)), "n_train": len(splits.train), "n_test": len(splits.test),
            "main": {k: v.to_dict() for k, v in main.items()}, "training": facts, "postprocess": post,
            "confusion": {k: _confusion(splits.test.labels, v.predicted) for k, v in main.items() if v.predicted},
        }
        if options.by_class:
            result["by_class"] = _by_class(run, splits, train_x, test_x)
        if options.whole:
            whole = concat(splits.train, splits.test, name="whole")
            log(f"[whole] backbone over all {len(whole)} images (leave-one-out)")
            res = evaluate_approach(_gallery(run, whole), "backbone", f"{run.backbone.name} {run.backbone.dim}",
                                    np.concatenate([train_x, test_x]), timing=False)
            result["whole"] = {"n": len(whole), "backbone": res.to_dict()}
    return result


def _by_class(run: Run, splits, train_x, test_x) -> dict[str, Any]:
    """Train on some classes, evaluate on the test images of the OTHER classes."""
    o = run.options
    seen, unseen = class_split(sorted(set(splits.train.labels) | set(splits.test.labels)), o.unseen_fraction,
                               o.seed)
    tr, te = indices_of(splits.train.labels, seen), indices_of(splits.test.labels, unseen)
    names = tuple(n for n in ("backbone", "triplet", "pca") if n in o.approaches)
    run.log(f"[by-class] training on {len(seen)} classes ({len(tr)} images), evaluating on {len(unseen)} unseen "
            f"classes ({len(te)} test images)")
    train, test = splits.train.subset(tr), splits.test.subset(te)
    res, facts = _approaches(run, train, train_x[tr], _gallery(run, test), test_x[te], tag="by-class",
                             timing=False, names=names)
    return {"seen": seen, "unseen": unseen, "n_train": len(train), "n_test": len(test),
            "results": {k: v.to_dict() for k, v in res.items()}, "training": facts}


def _confusion(labels: list[str], predicted: list[str]) -> dict[str, Any]:
    classes = sorted(set(labels) | set(predicted))
    at = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(labels, predicted):
        matrix[at[t], at[p]] += 1
    return {"classes": classes, "matrix": matrix.tolist()}


def _options_dict(options: EvalOptions) -> dict[str, Any]:
    d = asdict(options)
    d["approaches"] = list(options.approaches)
    d["pca_dims"] = list(options.pca_dims)
    d["variants"] = list(options.variants)
    return d


__all__ = ["APPROACHES", "EvalOptions", "run_comparison"]
