"""Which rows and columns of an evaluation's results the report and the figures show."""

from __future__ import annotations

from typing import Any


def main_columns(results: dict[str, Any]) -> list[str]:
    """Approaches of the headline table, in the original's order (PCA sizes other than the main one
    appear in the PCA table only)."""
    order = ["backbone", "triplet", "knn", "logreg", "pca", "head"]
    return [n for n in order if n in results["main"]]


def pca_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [dict(v) for k, v in results["main"].items() if k == "pca" or k.startswith("pca-")]
    return sorted(rows, key=lambda r: r["dim"])


def postprocess_rows(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The backbone and the label-free post-processing variants (``post:NAME``), as table rows."""
    rows = {"backbone": results["main"]["backbone"]} if "backbone" in results["main"] else {}
    return {**rows, **((results.get("postprocess") or {}).get("results") or {})}
