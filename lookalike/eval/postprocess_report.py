"""The label-free post-processing section of an evaluation report (results.md)."""

from __future__ import annotations

from typing import Any

from .tables import postprocess_rows

# The rule a post-processing must pass on every labelled collection to be on by default.
MIN_GAIN_P6, MAX_COST = 0.03, 0.10


def _f(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def rule(row: dict[str, Any], base: dict[str, Any], copy: dict | None, copy_base: dict | None) -> dict[str, Any]:
    """Each condition of the default rule for one variant on one collection."""
    cost = None
    if row.get("time_per_query_s") and base.get("time_per_query_s"):
        cost = row["time_per_query_s"] / base["time_per_query_s"] - 1
    elif row.get("embed_cost") is not None:
        cost = row["embed_cost"] - 1
    d6 = row["precision_at_k"]["6"] - base["precision_at_k"]["6"]
    d1 = row["precision_at_k"]["1"] - base["precision_at_k"]["1"]
    dcopy = None if not copy or not copy_base else copy["recall_at_1"] - copy_base["recall_at_1"]
    passed = (d6 >= MIN_GAIN_P6 and d1 >= 0 and cost is not None and cost < MAX_COST
              and dcopy is not None and dcopy >= 0)
    return {"delta_p6": d6, "delta_p1": d1, "cost": cost, "delta_copy_r1": dcopy, "passes": passed}


def summary_table(rows: dict[str, dict], names: list[str], base: dict, copies: dict, n: int) -> str:
    lines = ["| variant | P@1 | P@6 | mAP@R | P@6 include-self | ΔP@1 | ΔP@6 | time per query | bytes/vector | "
             "copy R@1 | copy R@5 | Δcopy R@1 | on by default? |", "|---" * 13 + "|"]
    for name in names:
        r = rows[name]
        key = name.split(":", 1)[-1]
        copy = copies.get(key)
        check = rule(r, base, copy, copies.get("backbone"))
        cost = "–" if check["cost"] is None else f"{check['cost']:+.1%}"
        per_query = (f"{1000 * r['time_per_query_s']:.1f} ms ({cost})" if r.get("time_per_query_s") else
                     f"embed ×{r['embed_cost']:.2f}" if r.get("embed_cost") else "–")
        verdict = "–" if name == "backbone" else ("passes here" if check["passes"] else "no")
        lines.append(f"| {r['title']} | {_f(r['precision_at_k']['1'])} | {_f(r['precision_at_k']['6'])} | "
                     f"{_f(r['map_at_r'])} | {_f(r['precision_at_k_include_self']['6'])} | "
                     f"{check['delta_p1']:+.3f} | {check['delta_p6']:+.3f} | {per_query} | "
                     f"{r['index_bytes'] / max(n, 1):,.0f} | {_f(copy and copy['recall_at_1'])} | "
                     f"{_f(copy and copy['recall_at_5'])} | "
                     f"{'–' if check['delta_copy_r1'] is None else format(check['delta_copy_r1'], '+.3f')} | "
                     f"{verdict} |")
    return "\n".join(lines) + "\n"


def edits_table(copies: dict[str, Any]) -> str:
    results = copies.get("results") or {}
    if not results:
        return ""
    kinds = copies["kinds"]
    lines = ["| variant | " + " | ".join(kinds) + " | all R@1 | all R@5 |", "|---" * (len(kinds) + 3) + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['recall_at_1_by_edit'][k]:.2f}" for k in kinds)
                     + f" | {r['recall_at_1']:.3f} | {r['recall_at_5']:.3f} |")
    return "\n".join(lines) + "\n"


def markdown(results: dict[str, Any], precision_table) -> str:
    """The section; ``precision_table`` is :func:`lookalike.eval.report.precision_table`."""
    post = results.get("postprocess") or {}
    main = postprocess_rows(results)
    names = list(main)
    if "backbone" not in main or len(names) < 2:
        return ""
    copies = post.get("copies", {})
    base = main["backbone"]
    parts = ["\n## Label-free post-processing of the backbone's vectors\n\n",
             f"Each variant is fitted on the {results['n_test']} test images it searches (the collection being "
             "indexed), never on their labels; queries go through the same transform. Same protocol, index and "
             "timing as above (the transform, and the second search of query expansion, are in the search time). "
             "*power norm + center* is the `--postprocess power-center` option. A variant would be on by default "
             f"only with ΔP@6 >= +{MIN_GAIN_P6:.2f} on every labelled collection, ΔP@1 >= 0, time per query "
             f"< +{MAX_COST:.0%} and copy-detection recall@1 not lower; the last column checks this collection "
             "alone.\n\n", summary_table(main, names, base, copies.get("results", {}), results["n_test"]),
             "\nLeave-one-out:\n\n", precision_table(main, names, extra_rows=True),
             "\nInclude-self:\n\n", precision_table(main, names, include_self=True, extra_rows=False)]
    if copies.get("results") and copies.get("kinds"):
        parts += [f"\n### Copy detection ({copies['copies']} edited copies of {copies['originals']} originals, "
                  f"searched among {copies['collection']} images)\n\n",
                  "The near-duplicate calibration's copy set (lookalike/eval/copies.py: crop 50-90%, resize "
                  "0.5-1.5×, JPEG q30-90, flip, colour jitter, rotation <= 10°, text/logo overlay, and a mix of "
                  "them); each variant is fitted on the collection, every copy is a query, the hit is its "
                  "original. Recall@1 by edit:\n\n", edits_table(copies)]
    spatial = post.get("spatial")
    if spatial:
        rows = spatial["results"]
        subset = "" if spatial["n"] == spatial["of"] else f" (a stratified {spatial['n']} of the {spatial['of']})"
        parts += [f"\n### Other pooling: GeM and multi-scale, on the test images{subset}\n\n",
                  "These need the feature map, so the images are embedded again (evaluation only: serving "
                  "pools by average); the backbone column is the same images. Embedding cost is the median "
                  "time of one image over the backbone's, measured alternately in the same run.\n\n",
                  summary_table(rows, list(rows), rows["backbone"], copies.get("results", {}), spatial["n"])]
    return "".join(parts)
