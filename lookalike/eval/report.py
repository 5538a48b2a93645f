"""Write an evaluation's results: results.md, results.json and the PNG figures.

results.md leads with the table in the original design's shape — rows K = 1..6, one column per
approach, then the time per query — followed by the other protocol, the split by class, the
whole-dataset backbone and the PCA components table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_bytes
from .metrics import KS
from .tables import main_columns, pca_rows

FILES = ("results.md", "results.json", "precision_at_k.png", "confusion_matrix.png", "pca.png")
ORIGINAL = """The original design's table (ResNet50; its K=1 of 1.0 suggests the query itself was in the index
and counted, i.e. the include-self protocol):

| K | ResNet50 2048 | ResNet50 + triplet head 256 | kNN classifier + ResNet50 search | + PCA |
|---|---|---|---|---|
| 1 | 1.0 | 1.0 | 0.919 | None |
| 6 | 0.901 | 0.918 | 0.919 | None |
| time per query | 0.175 s | 0.110 s | 0.080 s | |
"""


def _f(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _size(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def precision_table(rows: dict[str, dict[str, Any]], names: list[str], *, include_self: bool = False,
                    extra_rows: bool = True) -> str:
    """Markdown in the original's shape: rows K=1..6 then the time per query, one column per approach;
    then mAP@R, classifier accuracy and index size."""
    key = "precision_at_k_include_self" if include_self else "precision_at_k"
    mkey = "map_at_r_include_self" if include_self else "map_at_r"
    lines = ["| K | " + " | ".join(rows[n]["title"] for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for k in KS:
        lines.append(f"| {k} | " + " | ".join(_f(rows[n][key].get(str(k))) for n in names) + " |")
    if extra_rows and any(rows[n].get("time_per_query_s") is not None for n in names):
        lines.append("| time per query | " + " | ".join(
            f"{_f(rows[n].get('time_per_query_s'))} s" if rows[n].get("time_per_query_s") is not None else "–"
            for n in names) + " |")
        lines.append("| (embed p50 + search p50) | " + " | ".join(
            f"{_f(1000 * rows[n]['embed_p50_s'], 1)} + {_f(1000 * rows[n]['search_p50_s'], 1)} ms"
            if rows[n].get("embed_p50_s") is not None else "–" for n in names) + " |")
    lines.append("| mAP@R | " + " | ".join(_f(rows[n][mkey]) for n in names) + " |")
    if extra_rows:
        if any(rows[n].get("classifier_accuracy") is not None for n in names):
            lines.append("| classifier accuracy | " + " | ".join(_f(rows[n].get("classifier_accuracy"))
                                                              for n in names) + " |")
        lines.append("| index size | " + " | ".join(_size(rows[n].get("index_bytes")) for n in names) + " |")
    return "\n".join(lines) + "\n"


def pca_table(results: dict[str, Any]) -> str:
    rows = pca_rows(results)
    if not rows:
        return ""
    base = results["main"].get("backbone")
    lines = ["| components | explained variance | P@1 | P@6 | mAP@R | search p50 | embed p50 | index size |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows + ([dict(base, explained_variance=1.0)] if base else []):
        lines.append(f"| {r['dim']}{' (no PCA)' if r['name'] == 'backbone' else ''} | "
                     f"{_f(r.get('explained_variance'))} | {_f(r['precision_at_k']['1'])} | "
                     f"{_f(r['precision_at_k']['6'])} | {_f(r['map_at_r'])} | "
                     f"{_f(1000 * r['search_p50_s'], 2) if r.get('search_p50_s') is not None else '–'} ms | "
                     f"{_f(1000 * r['embed_p50_s'], 1) if r.get('embed_p50_s') is not None else '–'} ms | "
                     f"{_size(r['index_bytes'])} |")
    return "\n".join(lines) + "\n"


def verdict(results: dict[str, Any]) -> str:
    """One honest sentence per comparison the specification asks about."""
    out = []
    main = results["main"]
    if "triplet" in main and "backbone" in main:
        t, b = main["triplet"]["precision_at_k"]["6"], main["backbone"]["precision_at_k"]["6"]
        out.append(f"- Test split, P@6: triplet head {t:.3f} vs backbone {b:.3f} — the head is "
                   f"{'better' if t > b else 'NOT better'} ({t - b:+.3f}).")
    by = results.get("by_class", {}).get("results", {})
    if "triplet" in by and "backbone" in by:
        t, b = by["triplet"]["precision_at_k"]["6"], by["backbone"]["precision_at_k"]["6"]
        out.append(f"- Unseen classes, P@6: triplet head {t:.3f} vs backbone {b:.3f} — the head "
                   f"{'generalises to classes it never saw' if t > b else 'does NOT generalise to unseen classes'}"
                   f" ({t - b:+.3f}).")
    if "pca" in main and "backbone" in main:
        p, b = main["pca"]["precision_at_k"]["6"], main["backbone"]["precision_at_k"]["6"]
        out.append(f"- PCA {main['pca']['dim']}: P@6 {p:.3f} vs backbone {b:.3f} ({p - b:+.3f}) with an index "
                   f"{main['backbone']['index_bytes'] / max(main['pca']['index_bytes'], 1):.1f}× smaller.")
    return "\n".join(out) + ("\n" if out else "")


def markdown(results: dict[str, Any]) -> str:
    o = results["options"]
    names = main_columns(results)
    # The shipped post-processing option beside the other approaches; every variant in its own section.
    shipped = ((results.get("postprocess") or {}).get("results") or {}).get("post:power-center")
    rows = {**results["main"], **({"post:power-center": shipped} if shipped else {})}
    names += ["post:power-center"] if shipped else []
    primary_self = bool(results.get("include_self"))
    protocol = ("include-self (the query stays in the gallery and counts)" if primary_self
                else "leave-one-out (each query is removed from its own results)")
    parts = [f"# Evaluation: {results['dataset']}\n\n",
             f"Backbone **{results['backbone']}** ({results['backbone_dim']}-d, ImageNet weights). "
             f"Split: {results['split']}. Trained parts (triplet head, classifiers, PCA) were fitted on "
             f"{results['training']['n_fit']} training images, with {results['training']['n_val']} more held out for "
             f"validation (choosing the epoch, k and C); the {results['n_test']} test images "
             f"({len(results['classes'])} classes) are the gallery and the queries and were never used for fitting "
             "or tuning.\n\n",
             f"A hit is a retrieved image with the query's class. Protocol: {protocol}. "
             "Time per query = p50 of embedding one image with the real embedder (head included) + p50 of one "
             "search in the real FAISS index (exact inner product, one query at a time, FAISS single-threaded; "
             "the classifier included for two-step search). All approaches were timed together, round-robin, "
             f"on {o.get('timing_images', '?')} images and {o.get('timing_queries', '?')} queries, on a shared "
             "2-core machine: compare the columns, not the absolute values.\n\n",
             f"## Precision@K on the test split ({'include-self' if primary_self else 'leave-one-out'})\n\n",
             precision_table(rows, names, include_self=primary_self),
             "\n" + verdict(results),
             f"\n## The other protocol ({'leave-one-out' if primary_self else 'include-self, as in the original'})\n\n",
             precision_table(rows, names, include_self=not primary_self, extra_rows=False),
             "\n" + ORIGINAL]
    by = results.get("by_class")
    if by:
        # PCA as in the headline table, or its largest size when too few training images allow that one.
        pcas = sorted((r["dim"], n) for n, r in by["results"].items() if n == "pca" or n.startswith("pca-"))
        pca = ["pca"] if "pca" in by["results"] else [n for _, n in pcas[-1:]]
        bn = [n for n in ("backbone", "triplet") if n in by["results"]] + pca
        parts += [f"\n## Split by class: {len(by['unseen'])} classes never seen in training\n\n",
                  f"Trained on {by['training']['n_fit']} images of {len(by['seen'])} classes "
                  f"({', '.join(by['seen'])}); gallery and queries: the {by['n_test']} test images of the other "
                  f"classes ({', '.join(by['unseen'])}). Classifiers cannot predict unseen classes, so two-step "
                  "search is left out.\n\n", precision_table(by["results"], bn, extra_rows=False)]
    whole = results.get("whole")
    if whole:
        parts += [f"\n## Backbone over the whole dataset ({whole['n']} images, nothing trained)\n\n",
                  precision_table({"backbone": whole["backbone"]}, ["backbone"], extra_rows=False).replace(
                      "| K | ", "| K (leave-one-out) | "),
                  "\n", precision_table({"backbone": whole["backbone"]}, ["backbone"], include_self=True,
                                        extra_rows=False).replace("| K | ", "| K (include-self) | ")]
    from .postprocess_report import markdown as postprocess_markdown

    parts.append(postprocess_markdown(results, precision_table))
    if pca_rows(results):
        parts += ["\n## PCA: number of components (fitted on the training split)\n\n", pca_table(results)]
    tri = results["training"].get("triplet")
    if tri:
        c = tri["config"]
        parts += ["\n## Triplet head training\n\n",
                  f"{tri['dim_in']}→{c['hidden']}→{c['hidden']}→{c['dim_out']} (BatchNorm, ReLU, dropout "
                  f"{c['dropout']}), {c['mining']} mining on PK batches ({c['classes_per_batch']} classes × "
                  f"{c['per_class']} images), margin {c['margin']}, Adam lr {c['lr']} (cosine decay), weight decay "
                  f"{c['weight_decay']}; best epoch {tri['best_epoch']} of {len(tri['history'])} by validation "
                  f"P@6 {_f(tri['best_val_precision_at_k'])} (backbone {_f(tri['backbone_val_precision_at_k'])}; "
                  "validation queries searched among training + validation images). "
                  f"Trained in {tri['seconds']:.0f} s. The default mining and learning rate were chosen on the "
                  "Fashion-MNIST validation split, never on a test split.\n\n",
                  "| epoch | loss | active triplets | validation P@6 |\n|---|---|---|---|\n"]
        parts += [f"| {h['epoch']} | {h['loss']:.4f} | {h['active']:.1%} | {_f(h.get('val_precision_at_k'))} |\n"
                  for h in tri["history"]]
    parts += ["\n## Reproduce\n\n", f"`{results.get('command', 'lookalike eval ' + results['dataset'])}` "
              f"(seed {o['seed']}). Figures: precision_at_k.png, confusion_matrix.png, pca.png.\n"]
    return "".join(parts)


def write_report(results: dict[str, Any], out: Path) -> list[Path]:
    """Write every report file into ``out`` and return their paths."""
    from .plots import confusion_png, pca_png, precision_png

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "results.json", json.dumps(results, indent=2).encode())
    atomic_write_bytes(out / "results.md", markdown(results).encode())
    precision_png(results, out / "precision_at_k.png")
    confusion_png(results, out / "confusion_matrix.png")
    pca_png(results, out / "pca.png")
    return [out / name for name in FILES]
