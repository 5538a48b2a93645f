"""Calibrating the near-duplicate threshold on a copy-detection set.

For a labelled collection, every sampled original gets one edited copy per edit family
(:mod:`lookalike.eval.copies`). Positives are (copy, its original) pairs; negatives are
pairs of distinct images of the same class, the hardest non-duplicates a collection has.
Precision and recall of "similarity >= t" over those pairs give the curve; the chosen
threshold maximises the lowest F1 over the collections it is chosen on (photo-like sets: a
product catalogue such as Fashion-MNIST, whose same-class thumbnails look alike, is reported
beside it and wants a higher threshold).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from ..imaging import to_rgb
from .copies import KINDS, edit
from .datasets import LabelledImages, stratified_sample

THRESHOLDS = np.round(np.arange(0.70, 1.0001, 0.005), 3)


def copy_set(dataset: LabelledImages, n: int, seed: int = 0) -> tuple[LabelledImages, np.ndarray, list[str]]:
    """Edited copies of ``n`` sampled items → (copies, the original's row per copy, the edit kind per copy)."""
    rows = stratified_sample(dataset.labels, min(n, len(dataset)), seed) if n < len(dataset) else np.arange(len(dataset))
    plan = [(int(row), kind) for row in rows for kind in KINDS]

    def load(i: int):
        row, kind = plan[i]
        return edit(to_rgb(dataset.image(row)), kind, random.Random(f"{seed}-{dataset.keys[row]}-{kind}"))

    keys = [f"copy:{seed}:{dataset.keys[row]}:{kind}" for row, kind in plan]
    copies = LabelledImages(f"{dataset.name}-copies", keys, [dataset.labels[r] for r, _ in plan], load,
                            [None] * len(plan))
    return copies, np.array([r for r, _ in plan]), [k for _, k in plan]


def pair_scores(originals: np.ndarray, labels: list[str], copies: np.ndarray, source: np.ndarray,
                max_negatives: int = 200_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Similarities of the positive (copy, original) pairs and of same-class distinct pairs."""
    positives = np.einsum("ij,ij->i", copies, originals[source])
    labels_arr = np.asarray(labels)
    same = (labels_arr[:, None] == labels_arr[None, :]) & ~np.eye(len(labels_arr), dtype=bool)
    i, j = np.nonzero(np.triu(same, 1))
    if len(i) > max_negatives:
        pick = np.random.default_rng(seed).choice(len(i), max_negatives, replace=False)
        i, j = i[pick], j[pick]
    return positives, np.einsum("ij,ij->i", originals[i], originals[j])


def curve(positives: np.ndarray, negatives: np.ndarray, thresholds=THRESHOLDS) -> list[dict[str, float]]:
    """Precision and recall of ``score >= t`` for each threshold (precision 1.0 when nothing is flagged)."""
    out = []
    for t in thresholds:
        tp, fp = int((positives >= t).sum()), int((negatives >= t).sum())
        out.append({"threshold": float(t), "precision": tp / (tp + fp) if tp + fp else 1.0,
                    "recall": tp / len(positives) if len(positives) else 0.0})
    return out


def f1(row: dict[str, float]) -> float:
    p, r = row["precision"], row["recall"]
    return 2 * p * r / (p + r) if p + r else 0.0


def choose(curves: dict[str, list[dict[str, float]]], on: list[str]) -> float:
    """The threshold whose lowest F1 over the collections ``on`` is highest (ties: the lower one)."""
    rows = list(zip(*(curves[name] for name in on)))
    best = max(range(len(rows)), key=lambda i: (min(f1(r) for r in rows[i]), -i))
    return rows[best][0]["threshold"]


def plot(curves: dict[str, list[dict[str, float]]], chosen: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, rows in curves.items():
        ax.plot([r["recall"] for r in rows], [r["precision"] for r in rows], label=name)
        at = min(rows, key=lambda r: abs(r["threshold"] - chosen))
        ax.plot(at["recall"], at["precision"], "o", color=ax.lines[-1].get_color())
    ax.set_xlabel("recall (edited copy found)")
    ax.set_ylabel("precision (flagged pairs that are copies)")
    ax.set_title(f"Near-duplicate threshold (dots: the default {chosen})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def by_kind(positives: np.ndarray, kinds: list[str], threshold: float) -> dict[str, Any]:
    kinds_arr = np.asarray(kinds)
    return {k: round(float((positives[kinds_arr == k] >= threshold).mean()), 3) for k in KINDS}
