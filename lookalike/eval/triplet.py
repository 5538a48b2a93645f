"""The triplet head: three dense layers mapping backbone vectors to a smaller metric space,
trained with a triplet loss on PK batches (P classes × K images) and exported to ONNX.

Training runs on cached backbone features (PyTorch, CPU) — seconds per epoch. A validation
split carved out of the training data picks the best epoch; the test split is never seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .triplet_config import MININGS, TripletConfig  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

@dataclass
class TrainResult:
    module: Any  # the trained torch module (eval mode)
    dim_in: int
    config: TripletConfig
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float | None = None
    baseline_val: float | None = None  # validation score of the backbone alone
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "dim_in": self.dim_in, "history": self.history,
                "best_epoch": self.best_epoch, "best_val_precision_at_k": self.best_val,
                "backbone_val_precision_at_k": self.baseline_val, "seconds": round(self.seconds, 1)}


def build_head(dim_in: int, config: TripletConfig):
    """``Linear-BN-ReLU-Dropout`` ×2 then ``Linear``; outputs are L2-normalised."""
    import torch
    from torch import nn

    class TripletHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Linear(dim_in, config.hidden), nn.BatchNorm1d(config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
                nn.Linear(config.hidden, config.hidden), nn.BatchNorm1d(config.hidden), nn.ReLU(),
                nn.Dropout(config.dropout), nn.Linear(config.hidden, config.dim_out))

        def forward(self, x):
            return torch.nn.functional.normalize(self.net(x), dim=1)

    return TripletHead()


def pairwise_distances(embeddings):
    """Euclidean distances between unit rows ``(n, d)`` → ``(n, n)`` (gradient-safe at 0)."""
    import torch

    squared = (2.0 - 2.0 * embeddings @ embeddings.T).clamp_min(0.0)
    return torch.sqrt(squared + 1e-12) * (squared > 0)


def triplet_loss(embeddings, labels, margin: float, mining: str = "batch-hard"):
    """Triplet loss over every anchor of a PK batch → ``(loss, fraction of active triplets)``.

    batch-hard: hardest positive vs hardest negative of each anchor (Hermans et al., 2017).
    semi-hard: for each (anchor, positive) pair the closest negative farther than the positive
    (FaceNet); pairs with no such negative use their hardest negative.
    """
    import torch

    d = pairwise_distances(embeddings)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=embeddings.device)
    pos, neg = same & ~eye, ~same
    big = torch.finfo(d.dtype).max / 4
    if mining == "batch-hard":
        keep = pos.any(1) & neg.any(1)
        hardest_pos = (d * pos).max(1).values
        hardest_neg = torch.where(neg, d, torch.full_like(d, big)).min(1).values
        losses = torch.relu(hardest_pos - hardest_neg + margin)[keep]
    elif mining == "semi-hard":
        d_ap = d[:, :, None]  # (anchor, positive, 1)
        d_an = d[:, None, :]  # (anchor, 1, negative)
        semi = neg[:, None, :] & (d_an > d_ap) & (d_an < d_ap + margin)
        semi_neg = torch.where(semi, d_an.expand_as(semi), torch.full_like(semi, big, dtype=d.dtype)).min(2).values
        hardest_neg = torch.where(neg, d, torch.full_like(d, big)).min(1).values[:, None].expand_as(semi_neg)
        chosen = torch.where(semi.any(2), semi_neg, hardest_neg)
        losses = torch.relu(d - chosen + margin)[pos & neg.any(1)[:, None]]
    else:
        raise ConfigError(f"mining must be one of {', '.join(MININGS)}, got {mining!r}")
    if losses.numel() == 0:
        return embeddings.sum() * 0.0, 0.0
    return losses.mean(), float((losses > 0).float().mean())


def pk_batches(codes: np.ndarray, p: int, k: int, rng: np.random.Generator, n_batches: int):
    """Index arrays of PK batches: ``p`` random classes, ``k`` images each (with replacement
    only when a class has fewer than ``k``)."""
    by_class = [np.flatnonzero(codes == c) for c in np.unique(codes)]
    by_class = [rows for rows in by_class if len(rows) >= 2]
    if len(by_class) < 2:
        raise ConfigError("triplet training needs at least 2 classes with 2+ images each")
    p = min(p, len(by_class))
    for _ in range(n_batches):
        chosen = rng.choice(len(by_class), size=p, replace=False)
        yield np.concatenate([rng.choice(by_class[c], size=k, replace=len(by_class[c]) < k) for c in chosen])


def _val_score(val: np.ndarray, val_labels: np.ndarray, fit: np.ndarray, fit_labels: np.ndarray, k: int) -> float:
    """Precision@k of validation queries searched among training + validation vectors (leave-one-out).

    The training vectors join the gallery so that small datasets, with one or two validation
    images per class, still give a usable signal.
    """
    from .metrics import rank_gallery

    gallery = np.concatenate([val, fit])
    labels = np.concatenate([val_labels, fit_labels])
    ranked = rank_gallery(val, gallery, k, self_rows=np.arange(len(val)))
    hits = (labels[np.maximum(ranked, 0)] == val_labels[:, None]) & (ranked >= 0)
    return float(hits.mean())


def train_head(features: np.ndarray, labels: Sequence[str], config: TripletConfig = TripletConfig(), *,
               val_features: np.ndarray | None = None, val_labels: Sequence[str] | None = None,
               val_k: int = 6, progress: bool = False, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train a head on ``(n, dim_in) float32`` L2-normalised backbone features with string labels.

    With a validation split, the epoch with the best validation precision@``val_k`` is kept.
    """
    import torch
    from tqdm import tqdm

    from ..embedders.base import l2_normalise

    config.validate()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    x = torch.from_numpy(l2_normalise(features))
    classes, codes = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    y = torch.from_numpy(codes)
    module = build_head(x.shape[1], config)
    optimiser = torch.optim.Adam(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batch = min(config.classes_per_batch, len(classes)) * config.per_class
    n_batches = max(config.min_batches, len(codes) // batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs * n_batches)
    result = TrainResult(module, int(x.shape[1]), config)
    have_val = val_features is not None and val_labels is not None and len(val_labels) > 1
    if have_val:
        val_x = l2_normalise(val_features)
        val_y = np.asarray(val_labels, dtype=str)
        fit_x, fit_y = l2_normalise(features), np.asarray(labels, dtype=str)
        result.baseline_val = _val_score(val_x, val_y, fit_x, fit_y, val_k)
    best_state, stale = None, 0
    say = log or logger.info
    for epoch in range(1, config.epochs + 1):
        module.train()
        losses, active = [], []
        batches = pk_batches(codes, config.classes_per_batch, config.per_class, rng, n_batches)
        for rows in tqdm(batches, total=n_batches, desc=f"epoch {epoch}/{config.epochs}", leave=False,
                         disable=not progress, unit="batch"):
            rows_t = torch.from_numpy(rows)
            loss, frac = triplet_loss(module(x[rows_t]), y[rows_t], config.margin, config.mining)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            losses.append(loss.item())
            active.append(frac)
        entry = {"epoch": epoch, "loss": round(float(np.mean(losses)), 5), "active": round(float(np.mean(active)), 4)}
        if have_val:
            score = _val_score(_forward(module, val_x), val_y, _forward(module, fit_x), fit_y, val_k)
            entry["val_precision_at_k"] = round(score, 5)
        result.history.append(entry)
        say(f"epoch {epoch:>3}/{config.epochs}  loss {entry['loss']:.4f}  active triplets {entry['active']:.1%}"
            + (f"  val P@{val_k} {entry['val_precision_at_k']:.4f} (backbone {result.baseline_val:.4f})"
               if have_val else ""))
        score = entry.get("val_precision_at_k", -entry["loss"])
        if result.best_val is None or score > result.best_val:
            result.best_val, result.best_epoch, stale = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            stale += 1
            if stale >= config.patience:
                say(f"stopping: no better validation score for {config.patience} epochs")
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    if not have_val:
        result.best_val = None
    module.eval()
    result.seconds = time.perf_counter() - started
    return result


def _forward(module, vectors: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Run the head in eval mode → ``(n, dim_out) float32`` L2-normalised."""
    import torch

    was_training = module.training
    module.eval()
    with torch.no_grad():
        out = np.concatenate([module(torch.from_numpy(np.ascontiguousarray(vectors[i:i + batch], np.float32)))
                              .numpy() for i in range(0, len(vectors), batch)])
    module.train(was_training)
    return out


def embed_with(module, vectors: np.ndarray) -> np.ndarray:
    """Apply a trained head to L2-normalised backbone vectors → ``(n, dim_out) float32``."""
    from ..embedders.base import l2_normalise

    return _forward(module, l2_normalise(vectors))


def export_head(result: TrainResult, path: Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write the trained head as ONNX (opset 17, dynamic batch) with its training facts inside."""
    from .head_export import export_torch

    meta = {"kind": "triplet", "dim_in": result.dim_in, "dim_out": result.config.dim_out,
            "margin": result.config.margin, "mining": result.config.mining, "best_epoch": result.best_epoch,
            **(metadata or {})}
    return export_torch(result.module, result.dim_in, Path(path), meta)
