"""Index on an OpenSearch k-NN cluster (Amazon OpenSearch Service or self-managed), split by
concern: ``client`` (connection, auth, retries, error translation), ``mapping`` (index body,
documents, queries, scores), ``bulk`` (batched writes) and ``index`` (the Index protocol)."""

from .bulk import MAX_BATCH_BYTES, BulkReport
from .client import make_client
from .index import OpenSearchIndex
from .mapping import FIELD, K_MAX, index_body, raw_score

__all__ = ["OpenSearchIndex", "BulkReport", "make_client", "index_body", "raw_score", "FIELD", "K_MAX",
           "MAX_BATCH_BYTES"]
