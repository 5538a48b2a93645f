"""The triplet head: loss by hand, training on a small problem, ONNX export, use through the embedder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lookalike.errors import ConfigError  # noqa: E402
from lookalike.eval.triplet import TripletConfig, build_head, embed_with, export_head, pk_batches, train_head, triplet_loss  # noqa: E402


def test_batch_hard_loss_by_hand():
    # Unit vectors at 0°, 60° (class 0) and 30°, 180° (class 1); euclidean distance = 2·sin(Δ/2).
    angles = np.radians([0, 60, 30, 180])
    emb = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], 1), dtype=torch.float32)
    labels = torch.tensor([0, 0, 1, 1])
    d = lambda deg: 2 * np.sin(np.radians(deg) / 2)  # noqa: E731
    # anchor 0: hardest positive 60°, hardest negative 30° → d(60) - d(30) + m
    # anchor 1: positive 60°, negative 30° → same;  anchor 2: positive 150°, negative 30°;
    # anchor 3: positive 150°, negative 120° (to 60°)
    margin = 0.2
    expected = np.mean([max(0, d(60) - d(30) + margin), max(0, d(60) - d(30) + margin),
                        max(0, d(150) - d(30) + margin), max(0, d(150) - d(120) + margin)])
    loss, active = triplet_loss(emb, labels, margin, "batch-hard")
    assert float(loss) == pytest.approx(expected, abs=1e-5)
    assert active == 1.0


def test_semi_hard_loss_is_zero_when_classes_are_apart():
    emb = torch.tensor([[1.0, 0.0], [0.99, 0.141], [-1.0, 0.0], [-0.99, -0.141]])
    emb = torch.nn.functional.normalize(emb, dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    loss, active = triplet_loss(emb, labels, 0.2, "semi-hard")
    assert float(loss) == 0.0 and active == 0.0
    with pytest.raises(ConfigError):
        triplet_loss(emb, labels, 0.2, "hardest-ever")


def test_pk_batches_hold_p_classes_of_k():
    codes = np.repeat(np.arange(5), [10, 10, 10, 3, 1])  # class 4 has one image: never sampled
    batches = list(pk_batches(codes, p=3, k=4, rng=np.random.default_rng(0), n_batches=20))
    for rows in batches:
        assert len(rows) == 12
        counts = np.bincount(codes[rows], minlength=5)
        assert sorted(c for c in counts if c) == [4, 4, 4] and counts[4] == 0


def noisy_clusters(n_per_class: int, seed: int, classes: int = 6, dim: int = 48):
    """Class signal in 4 dimensions, strong noise in the other 44: raw cosine similarity is poor."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(123).normal(size=(classes, 4)) * 2.0
    labels = np.repeat(np.arange(classes), n_per_class)
    x = np.concatenate([centres[labels] + 0.3 * rng.normal(size=(len(labels), 4)),
                        1.5 * rng.normal(size=(len(labels), dim - 4))], axis=1)
    return x.astype(np.float32), np.asarray([f"c{c}" for c in labels])


def p_at_1(x, y):
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    return float((y[s.argmax(1)] == y).mean())


@pytest.mark.parametrize("mining", ["batch-hard", "semi-hard"])
def test_training_learns_the_metric_and_keeps_the_best_epoch(mining):
    from lookalike.embedders.base import l2_normalise

    x, y = noisy_clusters(40, seed=0)
    vx, vy = noisy_clusters(10, seed=1)
    tx, ty = noisy_clusters(30, seed=2)
    config = TripletConfig(dim_out=16, hidden=64, dropout=0.0, epochs=15, classes_per_batch=6, per_class=8,
                           mining=mining, lr=1e-3, seed=0)
    lines = []
    result = train_head(x, y, config, val_features=vx, val_labels=vy, log=lines.append)
    assert len(result.history) == len(lines) >= 1 and "loss" in lines[0]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.best_val == max(h["val_precision_at_k"] for h in result.history)
    before, after = p_at_1(l2_normalise(tx), ty), p_at_1(embed_with(result.module, tx), ty)
    assert after > before + 0.15, (before, after)


def test_onnx_export_matches_torch(tmp_path):
    from lookalike.embedders.heads import apply_head, head_dims, head_info

    config = TripletConfig(dim_out=8, hidden=32, epochs=2, classes_per_batch=3, per_class=4)
    x, y = noisy_clusters(12, seed=3, classes=3, dim=20)
    result = train_head(x, y, config)
    path = export_head(result, tmp_path / "head.onnx", {"backbone": "toy"})
    assert head_dims(path) == (20, 8)
    info = head_info(path)
    assert info["kind"] == "triplet" and info["backbone"] == "toy" and info["dim_in"] == 20
    for n in (1, 7):  # dynamic batch axis
        probe = np.random.default_rng(n).normal(size=(n, 20)).astype(np.float32)
        np.testing.assert_allclose(apply_head(path, probe), embed_with(result.module, probe), atol=1e-5)


def test_head_through_the_real_embedder(tmp_path, embedder, demo_dir):
    """`--head` path: OnnxEmbedder(head) == head(backbone vectors), as indexing/search/serving use it."""
    from lookalike.embedders import create_embedder
    from lookalike.embedders.heads import apply_head
    from lookalike.imaging import load_image_file
    from tests.conftest import CACHE_DIR

    torch.manual_seed(0)
    module = build_head(embedder.dim, TripletConfig(dim_out=32, hidden=64)).eval()
    from lookalike.eval.triplet import TrainResult

    path = export_head(TrainResult(module, embedder.dim, TripletConfig(dim_out=32, hidden=64)), tmp_path / "h.onnx")
    images = [load_image_file(p, max_pixels=10**7)[1] for p in sorted(demo_dir.rglob("*.png"))[:3]]
    with_head = create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, head=path)
    assert with_head.dim == 32 and with_head.name == "efficientnet-lite2+h"
    np.testing.assert_allclose(with_head.encode(images), apply_head(path, embedder.encode(images)), atol=1e-5)


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="mining"):
        TripletConfig(mining="random").validate()
    with pytest.raises(ConfigError, match="2 classes"):
        TripletConfig(per_class=1).validate()
    with pytest.raises(ConfigError, match="2 classes"):
        train_head(np.ones((4, 8), np.float32), ["a", "a", "a", "a"], TripletConfig(epochs=1))


def test_a_head_of_another_width_is_refused_naming_both(tmp_path, capsys):
    """`--head` trained on another backbone fails at load with both widths, not inside ONNX Runtime."""
    from lookalike import cli
    from lookalike.embedders import create_embedder
    from lookalike.eval.head_export import export_linear
    from tests.conftest import CACHE_DIR

    head = export_linear(np.eye(16, 64, dtype=np.float32), np.zeros(16, np.float32), tmp_path / "narrow.onnx",
                         {"backbone": "some-64-d-model"})
    with pytest.raises(ConfigError, match=r"takes 64-d vectors but efficientnet-lite2 makes 1280-d.*some-64-d-model"):
        create_embedder("efficientnet-lite2", cache_dir=CACHE_DIR, head=head)
    folder = tmp_path / "imgs" / "a"
    folder.mkdir(parents=True)
    code = cli.main(["index", str(tmp_path / "imgs"), "--index-dir", str(tmp_path / "idx"), "--head", str(head)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "64-d" in err[0] and "1280-d" in err[0], err

