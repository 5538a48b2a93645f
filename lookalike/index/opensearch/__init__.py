"""Index on an OpenSearch k-NN cluster (Amazon OpenSearch Service or self-managed), split by
concern: ``client`` (connection, auth, retries, time limits, error translation; the cluster's
version behind each feature and the query path's requests), ``mapping`` (index body, documents,
queries, scores), ``bulk`` (batched writes) and ``index`` (the Index protocol)."""

from .bulk import MAX_BATCH_BYTES, BulkReport
from .client import QUERY_REQUESTS, deadline, make_client, query_http_methods, query_iam_actions
from .index import OpenSearchIndex
from .mapping import FIELD, K_MAX, MAX_ID_BYTES, index_body, raw_score

__all__ = ["OpenSearchIndex", "BulkReport", "make_client", "deadline", "index_body", "raw_score", "FIELD", "K_MAX",
           "MAX_BATCH_BYTES", "MAX_ID_BYTES", "QUERY_REQUESTS", "query_http_methods", "query_iam_actions"]
