"""What changes with the OpenSearch / k-NN plugin version, in one place.

Each rule names the upstream source it imitates: ``opensearch-project/k-NN`` at the release
branch given (``2.8``, ``2.11``, ``2.19``, ``3.0``...), read from the plugin's own code, so the
stand-in can run as 2.11, 2.19 or 3.x and the contract suite can run against each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> Version:
        parts = [int(p) for p in text.split("-")[0].split(".")[:3]]
        return cls(*(parts + [0] * (3 - len(parts))))

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def k_range_error(version: Version, k) -> str | None:
    """The message for a ``k`` outside (0, 10000], or None when ``k`` is fine.

    k-NN 2.11, src/main/java/org/opensearch/knn/index/query/KNNQueryBuilder.java: two messages,
    "[knn] requires k > 0" and "[knn] requires k <= 10000". From 2.14 one message, "[knn] requires k
    to be in the range (0, 10000]" (same file: the ``k(Integer)`` setter in 2.14, ``Builder.validate``
    in 2.16..3.0).
    """
    if isinstance(k, int) and not isinstance(k, bool) and 0 < k <= 10_000:
        return None
    if version.at_least(2, 14):
        return "[knn] requires k to be in the range (0, 10000]"
    return "[knn] requires k > 0" if not isinstance(k, int) or k <= 0 else "[knn] requires k <= 10000"


def method_parameters_supported(version: Version) -> bool:
    """k-NN 2.19, src/main/java/org/opensearch/knn/index/query/request/MethodParameter.java:
    ``EF_SEARCH(..., Version.V_2_16_0, ...)``. Before 2.16 the query parser (2.11/2.15,
    KNNQueryBuilder.java ``fromXContent``) knows no object but ``filter`` and throws a
    ``ParsingException``: "[knn] unknown token [START_OBJECT]"."""
    return version.at_least(2, 16)


def engine_supports_filters(version: Version, engine: str) -> bool:
    """k-NN 2.8, src/main/java/org/opensearch/knn/index/query/KNNQueryBuilder.java ``doToQuery``: any
    engine that writes its own segment files (nmslib, faiss) is refused with "Engine [%s] does not
    support filters"; from 2.9 (src/main/java/org/opensearch/knn/index/util/KNNEngine.java,
    ``ENGINES_SUPPORTING_FILTERS = LUCENE, FAISS``) only nmslib is."""
    if engine == "lucene":
        return True
    return engine == "faiss" and version.at_least(2, 9)


def default_ef_search(version: Version) -> int:
    """The graph's ef_search when the mapping gives none: k-NN 2.11, KNNSettings.java
    ``INDEX_KNN_DEFAULT_ALGO_PARAM_EF_SEARCH = 512``; 2.19, util/IndexHyperParametersUtil.java
    ``getHNSWEFSearchValue``: 512 for indexes created before 2.12, else 100."""
    return 100 if version.at_least(2, 12) else 512


def effective_ef_search(version: Version, knn_field, index_settings: dict, method_parameters: dict,
                        k: int) -> int:
    """The ef_search value each engine's graph search is given, per the plugin's code (a graph
    search also never keeps fewer than ``k`` candidates; that part is not modelled here):

    - faiss: k-NN 2.19, jni/src/faiss_wrapper.cpp: ``hnswParams.efSearch =
      getIntegerMethodParameter(methodParams, EF_SEARCH, hnswReader->hnsw.efSearch)``: the query's
      ``method_parameters.ef_search``, else the graph's own value, written at build time from the
      mapping's ``method.parameters.ef_search`` (same file, ``indexHnsw->hnsw.efSearch = ...``).
      The index setting ``index.knn.algo_param.ef_search`` is not read.
    - nmslib: k-NN 2.19, src/main/java/org/opensearch/knn/index/util/IndexUtil.java
      ``getParametersAtLoading``: only nmslib gets the index setting, when the graph is loaded.
    - lucene: k-NN 2.19, src/main/java/org/opensearch/knn/index/query/KNNQueryFactory.java:
      ``luceneK = max(k, method_parameters.ef_search)``; Lucene's HNSW search uses k as its ef.
    """
    requested = method_parameters.get("ef_search")
    if knn_field.engine == "lucene":
        return max(k, requested or 0)
    if knn_field.engine == "nmslib":
        return int(index_settings.get("index.knn.algo_param.ef_search", default_ef_search(version)))
    graph = knn_field.method.get("parameters", {}).get("ef_search", default_ef_search(version))
    return int(requested or graph)


def knn_scores(space: str, engine: str, version: Version, matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """OpenSearch ``_score`` of ``(n, dim) float32`` rows against a ``(dim,)`` query, in float32.

    - innerproduct: k-NN 2.19, src/main/java/org/opensearch/knn/index/engine/faiss/Faiss.java maps
      faiss's inner product through ``SpaceType.INNER_PRODUCT.scoreTranslation(-1 * rawScore)``
      (SpaceType.java: ``1 / (1 + d)`` for ``d >= 0``, else ``-d + 1``): ``1 + ip`` if ``ip > 0``,
      else ``1 / (1 - ip)``; Lucene's MAXIMUM_INNER_PRODUCT scales the same way.
    - cosinesimil: nmslib's raw score is ``1 - cos``; k-NN 2.18 SpaceType.java ``COSINESIMIL``
      translates it with ``1 / (1 + raw)`` (= ``1 / (2 - cos)``); from 2.19 (SpaceType.java, "Use
      one formula to calculate cosine similarity", #2357) with ``max((2 - raw) / 2, 0)`` =
      ``(1 + cos) / 2``, which faiss (2.19+, Faiss.java: ``scoreTranslation(1 - rawScore)``) and
      Lucene's COSINE give too.
    - l2, l1, linf: SpaceType.java ``1 / (1 + d)`` (faiss's l2 ``d`` is the squared distance).
    """
    one = np.float32(1)
    if space == "innerproduct":
        ip = matrix @ query
        return np.where(ip > 0, one + ip, one / (one - np.minimum(ip, 0))).astype(np.float32)
    if space == "cosinesimil":
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
        cos = ((matrix @ query) / np.where(norms == 0, 1, norms)).astype(np.float32)
        if engine == "nmslib" and not version.at_least(2, 19):
            return (one / (one + (one - cos))).astype(np.float32)
        return np.maximum((one + cos) / 2, 0).astype(np.float32)
    diff = matrix - query
    if space == "l2":
        d = (diff * diff).sum(axis=1)
    elif space == "l1":
        d = np.abs(diff).sum(axis=1)
    else:  # linf
        d = np.abs(diff).max(axis=1)
    return (one / (one + d)).astype(np.float32)
