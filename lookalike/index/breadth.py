"""How wide an HNSW search looks when ``hnsw_ef_search`` is 0: by the entries searched."""

from __future__ import annotations

# Measured in docs/BENCHMARKS.md, "Index at 100k and 1M vectors" (M=48, efConstruction=80): up to
# 100k, 128 (recall@10 0.996 on the dense synthetic 100k, 0.9995 on Fashion-MNIST's 10k test split
# with M=32 at 0.31 ms, where 384 took 0.55); up to 500k (where the local index turns to IVF), 256
# (0.974 at 500k in 1.5 ms, where 384 gave 0.980 in 2.4); above, 384 (0.956 at 1M; 256: 0.944, 320:
# 0.951). A size not known (an OpenSearch mapping, made before its documents) takes the largest.
EF_SEARCH_SMALL, EF_SEARCH_SMALL_UP_TO = 128, 100_000
EF_SEARCH_MEDIUM, EF_SEARCH_MEDIUM_UP_TO = 256, 500_000
EF_SEARCH_LARGE = 384


def hnsw_ef_search_for(entries: int | None, setting: int = 0) -> int:
    """The efSearch a search of ``entries`` vectors runs with: ``setting`` if set (not 0), else by size."""
    if setting:
        return setting
    if entries is None:
        return EF_SEARCH_LARGE
    if entries <= EF_SEARCH_SMALL_UP_TO:
        return EF_SEARCH_SMALL
    return EF_SEARCH_MEDIUM if entries <= EF_SEARCH_MEDIUM_UP_TO else EF_SEARCH_LARGE
