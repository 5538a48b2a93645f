"""The evaluation figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .metrics import KS
from .tables import main_columns, pca_rows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def precision_png(results: dict[str, Any], path: Path) -> None:
    """P@K for K = 1..6, one curve per approach; leave-one-out and include-self side by side."""

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, key, title in ((axes[0], "precision_at_k", "leave-one-out"),
                           (axes[1], "precision_at_k_include_self", "include-self")):
        for name in main_columns(results):
            row = results["main"][name]
            ax.plot(KS, [row[key][str(k)] for k in KS], marker="o", label=row["title"])
        ax.set_title(f"{results['dataset']}: precision@K ({title})")
        ax.set_xlabel("K")
        ax.set_xticks(KS)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("precision@K")
    axes[0].legend(fontsize=7, loc="lower left")
    _save(fig, path)


def confusion_png(results: dict[str, Any], path: Path) -> None:
    """Row-normalised confusion matrix of each classifier on the test split."""
    plt = _pyplot()
    confusion = results.get("confusion") or {}
    if not confusion:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no classifier was evaluated", ha="center", va="center")
        _save(fig, path)
        return
    n = len(next(iter(confusion.values()))["classes"])
    size = max(5.0, 0.32 * n + 2.5)
    fig, axes = plt.subplots(1, len(confusion), figsize=(size * len(confusion), size), squeeze=False)
    for ax, (name, data) in zip(axes[0], confusion.items()):
        matrix = np.asarray(data["matrix"], dtype=float)
        rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        ticks = np.arange(len(data["classes"]))
        ax.set_xticks(ticks, data["classes"], rotation=90, fontsize=7)
        ax.set_yticks(ticks, data["classes"], fontsize=7)
        if len(ticks) <= 12:
            for i in ticks:
                for j in ticks:
                    if matrix[i, j]:
                        ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if rows[i, j] > 0.5 else "black")
        acc = results["main"][name].get("classifier_accuracy")
        ax.set_title(f"{results['main'][name]['title'].split(' + ')[0]}: accuracy {acc:.3f}", fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    _save(fig, path)


def pca_png(results: dict[str, Any], path: Path) -> None:
    """Components vs P@1/P@6/mAP@R (left) and vs search time and index size (right)."""

    plt = _pyplot()
    rows = pca_rows(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    if not rows:
        for ax in (left, right):
            ax.axis("off")
        left.text(0.5, 0.5, "PCA was not evaluated", ha="center", va="center")
        _save(fig, path)
        return
    base = results["main"].get("backbone")
    dims = [r["dim"] for r in rows]
    for label, get in (("P@1", lambda r: r["precision_at_k"]["1"]), ("P@6", lambda r: r["precision_at_k"]["6"]),
                       ("mAP@R", lambda r: r["map_at_r"])):
        line, = left.plot(dims, [get(r) for r in rows], marker="o", label=f"PCA {label}")
        if base:
            left.axhline(get(base), color=line.get_color(), linestyle="--", alpha=0.6,
                         label=f"backbone {base['dim']} {label}")
    left.set_xscale("log", base=2)
    left.set_xticks(dims, [str(d) for d in dims])
    left.set_xlabel("PCA components")
    left.set_title(f"{results['dataset']}: retrieval quality vs components")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    times = [1000 * (r.get("search_p50_s") or 0) for r in rows]
    right.plot(dims, times, marker="o", color="tab:red", label="search p50 (ms)")
    if base and base.get("search_p50_s") is not None:
        right.axhline(1000 * base["search_p50_s"], color="tab:red", linestyle="--", alpha=0.6,
                      label=f"backbone {base['dim']} search p50")
        right.legend(fontsize=7, loc="upper left")
    right.set_ylabel("search p50 (ms)", color="tab:red")
    right.set_xscale("log", base=2)
    right.set_xticks(dims, [str(d) for d in dims])
    right.set_xlabel("PCA components")
    twin = right.twinx()
    twin.plot(dims, [r["index_bytes"] / 1e6 for r in rows], marker="s", color="tab:blue")
    twin.set_ylabel("index size (MB)", color="tab:blue")
    right.set_title("cost vs components")
    right.grid(alpha=0.3)
    _save(fig, path)
