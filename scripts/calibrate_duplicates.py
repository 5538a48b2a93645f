"""Calibrate the near-duplicate threshold (lookalike.limits.DUPLICATE_THRESHOLD) on copy-detection sets.

Usage: python scripts/calibrate_duplicates.py [--sets demo,tuxpaint,fashion-mnist] [--originals 200]
Writes reports/duplicates/{results.md,results.json,precision_recall.png}. Features are cached, so a
re-run embeds nothing new. See lookalike/eval/duplicates.py for the protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from lookalike import limits
    from lookalike.config import Settings
    from lookalike.embedders import embedder_from_settings
    from lookalike.eval.datasets import fashion_mnist, image_folder, stratified_sample, tuxpaint
    from lookalike.eval.duplicates import by_kind, choose, copy_set, curve, f1, pair_scores, plot
    from lookalike.eval.features import extract

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="demo,tuxpaint,fashion-mnist")
    parser.add_argument("--originals", type=int, default=200, help="originals copied per set (default 200)")
    parser.add_argument("--choose-on", default="demo,tuxpaint",
                        help="sets whose lowest F1 the threshold maximises (default demo,tuxpaint)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "duplicates")
    args = parser.parse_args()

    settings = Settings.from_env()
    embedder = embedder_from_settings(settings)
    loaders = {"demo": lambda: image_folder(ROOT / "data" / "demo"),
               "tuxpaint": lambda: tuxpaint(datasets_dir=settings.datasets_dir),
               "fashion-mnist": lambda: fashion_mnist("test", datasets_dir=settings.datasets_dir)}
    curves, details = {}, {}
    for name in args.sets.split(","):
        data = loaders[name]()
        if len(data) > 2000:  # negatives come from all same-class pairs: keep the set in memory
            data = data.subset(stratified_sample(data.labels, 2000, 0))
        originals = extract(data, embedder, cache_dir=settings.cache_dir, progress=True)
        copies, source, kinds = copy_set(data, args.originals)
        copy_vectors = extract(copies, embedder, cache_dir=settings.cache_dir, progress=True)
        positives, negatives = pair_scores(originals, data.labels, copy_vectors, source)
        curves[name] = curve(positives, negatives)
        details[name] = {"images": len(data), "copies": len(copies), "negative_pairs": len(negatives),
                         "positives": positives, "kinds": kinds}
        print(f"{name}: {len(data)} images, {len(copies)} copies, {len(negatives)} same-class pairs", flush=True)
    chosen = choose(curves, [n for n in args.choose_on.split(",") if n in curves])
    args.out.mkdir(parents=True, exist_ok=True)
    plot(curves, chosen, args.out / "precision_recall.png")
    rows, summary = [], {}
    for name, c in curves.items():
        at = next(r for r in c if r["threshold"] >= chosen)
        kinds = by_kind(details[name]["positives"], details[name]["kinds"], chosen)
        summary[name] = {**{k: v for k, v in details[name].items() if k not in ("positives", "kinds")},
                         "precision": round(at["precision"], 4), "recall": round(at["recall"], 4), "recall_by_edit": kinds}
        summary[name]["f1"] = round(f1(at), 4)
        rows.append(f"| {name} | {details[name]['images']} | {details[name]['copies']} | {at['precision']:.3f} | "
                    f"{at['recall']:.3f} | {f1(at):.3f} | " + " | ".join(f"{kinds[k]:.2f}" for k in kinds) + " |")
    kinds_header = " | ".join(next(iter(summary.values()))["recall_by_edit"])
    md = [f"# Near-duplicate threshold: {chosen}", "",
          f"Command: `python scripts/calibrate_duplicates.py --sets {args.sets} --originals {args.originals}`", "",
          "Positives: each sampled original against one edited copy per edit family (lookalike/eval/copies.py). "
          "Negatives: every pair of distinct images of the same class (the hardest non-duplicates). The default "
          f"maximises the lowest F1 over {args.choose_on}; Fashion-MNIST, a catalogue whose same-class thumbnails "
          "look alike, is reported beside it (there, `--threshold 0.95` or higher suits better). Recall by edit is "
          "the share of copies of that kind whose similarity to their original reaches the threshold.", "",
          f"| set | images | copies | precision | recall | F1 | {kinds_header} |",
          "|---" * (6 + len(next(iter(summary.values()))["recall_by_edit"])) + "|", *rows, "",
          f"Library default in lookalike/limits.py: {limits.DUPLICATE_THRESHOLD}.", "",
          "![precision/recall](precision_recall.png)", ""]
    (args.out / "results.md").write_text("\n".join(md))
    (args.out / "results.json").write_text(json.dumps({"threshold": chosen, "sets": summary, "curves": curves},
                                                      indent=1))
    print("\n".join(md))


if __name__ == "__main__":
    main()
