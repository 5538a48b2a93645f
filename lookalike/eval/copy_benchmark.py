"""Copy detection per post-processing variant, and the label-free view of ``lookalike eval``.

The copy benchmark is the near-duplicate calibration's set (``scripts/calibrate_duplicates.py``,
:func:`lookalike.eval.duplicates.copy_set`): about 100 sampled originals of the collection, one
edited copy per edit family of :mod:`lookalike.eval.copies` (crop 50-90%, resize, JPEG q30-90,
flip, colour jitter, rotation up to 10°, text/logo overlay, and a mix). The collection is the
whole labelled set (Fashion-MNIST: a stratified 2,000 of its test split, as in the calibration);
each variant is fitted on it, every copy is a query and the hit is its original (recall@1, @5).
Features are cached (:mod:`lookalike.eval.features`), so the calibration and this share them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .postprocess_variants import SHIPPED, SPATIAL, VARIANTS, copy_recall, evaluate_fitted, fit_variant

COPY_ORIGINALS = 100
FASHION_MNIST_COPY_SET = 2000


def copy_collection(spec: str | Path, datasets_dir: Path | None, limit: int | None = None):
    """The collection the copy benchmark searches (the near-duplicate calibration's; with ``limit``, a
    stratified sample of that many, as ``lookalike eval --limit`` samples the test split)."""
    from .datasets import fashion_mnist, open_dataset, stratified_sample

    if str(spec) == "fashion-mnist":
        data = fashion_mnist("test", datasets_dir=datasets_dir)
        data = data.subset(stratified_sample(data.labels, FASHION_MNIST_COPY_SET, 0))
    else:
        data = open_dataset(spec, datasets_dir=datasets_dir)
    return data.subset(stratified_sample(data.labels, limit, 0)) if limit and limit < len(data) else data


def copy_features(run, spec, limit: int | None = None) -> tuple[Any, np.ndarray, Any, np.ndarray, np.ndarray, list]:
    """``(collection, its vectors, the copies, their vectors, original row per copy, edit kind per copy)``."""
    from .duplicates import copy_set
    from .features import extract

    embedder = run.backbone
    data = copy_collection(spec, run.settings.datasets_dir, limit)
    copies, source, kinds = copy_set(data, COPY_ORIGINALS if not limit else min(COPY_ORIGINALS, max(limit // 10, 2)))
    x = extract(data, embedder, cache_dir=run.settings.cache_dir, workers=run.settings.workers,
                progress=run.progress)
    q = extract(copies, embedder, cache_dir=run.settings.cache_dir, workers=run.settings.workers,
                progress=run.progress)
    return data, x, copies, q, source, kinds


def postprocess_view(run, spec, test, test_x: np.ndarray, gallery, names: tuple[str, ...], *,
                     limit: int | None = None) -> tuple[dict, dict]:
    """Every variant of ``names`` on the test gallery (fitted on it, no labels) and on the copy set.

    Returns ``(ApproachResults by name, facts)``; the results join the main timing round-robin.
    The spatial variants (GeM, multi-scale) need their own features: they are computed on the
    test gallery (Fashion-MNIST: a stratified sample of it, with the backbone on the same sample
    beside them) and on the copy set.
    """
    results: dict[str, Any] = {}
    facts: dict[str, Any] = {"variants": {}, "copies": {}}
    plain = [n for n in names if n in VARIANTS or n == "backbone"]
    spatial = [n for n in names if n in SPATIAL]
    run.log(f"[post-processing] {len(plain)} variants fitted on the {len(test)} test images (no labels)")
    for name in plain:
        fitted = _backbone(test_x) if name == "backbone" else fit_variant(name, test_x)
        if name != "backbone":
            results[f"post:{name}"] = evaluate_fitted(gallery, f"post:{name}", fitted, test_x)
        facts["variants"][name] = {"title": fitted.title, "qe": fitted.qe}
    data, x, copies, q, source, kinds = copy_features(run, spec, limit)
    facts["copies"] = {"collection": len(data), "copies": len(q), "originals": int(len(set(source.tolist()))),
                       "kinds": list(dict.fromkeys(kinds)), "results": {}}
    run.log(f"[copies] {len(q)} edited copies of {len(set(source.tolist()))} originals searched among {len(data)}")
    for name in ["backbone"] + [n for n in plain if n != "backbone"]:
        fitted = _backbone(x) if name == "backbone" else fit_variant(name, x)
        facts["copies"]["results"][name] = copy_recall(fitted, q, source, kinds)
    if spatial:
        facts["_copy_set"] = (data, copies, source, kinds)
        _spatial(run, test, gallery, spatial, facts)
    return results, facts


def _backbone(x):
    from .postprocess_variants import Fitted

    return Fitted("backbone", np.ascontiguousarray(x, np.float32), lambda v: np.asarray(v, np.float32))


SPATIAL_LIMIT = 1000  # test images embedded again per spatial variant (Fashion-MNIST's 10k would take long)


def _spatial(run, test, gallery, names, facts) -> None:
    """GeM / multi-scale (and power-center on top) on the test gallery, or a stratified sample of it."""
    from .datasets import stratified_sample
    from .evaluate import Gallery
    from .features import extract
    from .spatial import spatial_embedder

    rows = (stratified_sample(test.labels, SPATIAL_LIMIT, run.options.seed) if len(test) > SPATIAL_LIMIT
            else np.arange(len(test)))
    subset = test.subset(rows)
    sub = Gallery([test.labels[i] for i in rows], subset, np.arange(0), gallery.workdir)
    facts["spatial"] = {"n": int(len(rows)), "of": len(test), "results": {}}
    feats = lambda ds, e: extract(ds, e, cache_dir=run.settings.cache_dir, workers=run.settings.workers,  # noqa: E731
                                  progress=run.progress)
    base_x = feats(subset, run.backbone)
    facts["spatial"]["results"]["backbone"] = evaluate_fitted(
        sub, "backbone", _backbone(base_x), base_x, timing=False, title=f"{run.backbone.name} (same images)").to_dict()
    data, copies, source, kinds = facts.pop("_copy_set")
    for name in names:
        embedder = spatial_embedder(run.backbone, name, run.settings.cache_dir)
        run.log(f"[post-processing] {name}: embedding {len(rows)} test images and {len(copies)} copies again")
        x = feats(subset, embedder)
        # The copy set is embedded again only where the collection is small (not Fashion-MNIST's 2,000).
        cx, cq = (feats(data, embedder), feats(copies, embedder)) if len(data) <= SPATIAL_LIMIT else (None, None)
        cost = _embed_ratio(run.backbone, embedder, subset)
        for label, fit in ((name, _backbone), (f"{name}+{SHIPPED}", lambda v: fit_variant(SHIPPED, v))):
            title = embedder.title + (" + power norm + center" if label != name else "")
            res = evaluate_fitted(sub, f"post:{label}", fit(x), x, timing=False, title=title)
            res.extra["embed_cost"] = cost
            facts["spatial"]["results"][label] = res.to_dict()
            if cx is not None:
                facts["copies"]["results"][label] = copy_recall(fit(cx), cq, source, kinds)


def _embed_ratio(backbone, embedder, subset, n: int = 12) -> float:
    """Embedding time of ``embedder`` over the backbone's, one image at a time, alternating."""
    import time

    images = [subset.image(i) for i in range(min(n, len(subset)))]
    backbone.encode(images[:1]), embedder.encode(images[:1])  # warm-up
    spent = {"b": [], "e": []}
    for image in images:
        for key, e in (("b", backbone), ("e", embedder)):
            t = time.perf_counter()
            e.encode([image])
            spent[key].append(time.perf_counter() - t)
    return round(float(np.median(spent["e"]) / np.median(spent["b"])), 3)


__all__ = ["SHIPPED", "copy_collection", "copy_features", "postprocess_view"]
