"""The cloud search service: the SageMaker endpoint embeds, OpenSearch searches, S3 serves images."""

from __future__ import annotations

import time

from ..imaging import decode_image, image_pixels
from ..search.schema import Limits, SearchRequest, SearchResponse
from ..search.service import SearchService
from .sagemaker_embedder import EncodedImage


class CloudSearchService(SearchService):
    """The search service with the query's original bytes forwarded to the model endpoint.

    The image is decoded here first, so limits and errors are exactly the local API's; the
    endpoint then decodes the same bytes with the same code (see ``sagemaker_embedder``).
    """

    def search(self, request: SearchRequest) -> SearchResponse:
        if request.id is not None:  # the stored vector is in OpenSearch: nothing to embed
            return super().search(request)
        started = time.perf_counter()
        with self.budget.hold(image_pixels(request.image)):
            decode_image(request.image, max_pixels=self.limits.max_image_pixels)
        return self.search_image(EncodedImage(request.image), request.k, request.filter, started=started)


def build_cloud_service(settings, *, s3=None, runtime=None) -> CloudSearchService:
    """SageMaker embedder + OpenSearch index + presigned S3 URLs, as configured in ``settings``."""
    from ..index import open_index
    from .aws import sagemaker_runtime_client
    from .sagemaker_embedder import SageMakerEmbedder
    from .storage import PresignedUrls

    url_for = PresignedUrls.from_settings(settings, s3)
    # One image takes ~0.1 s; give up well before API Gateway's 29 s integration timeout.
    runtime = runtime or sagemaker_runtime_client(settings, read_timeout=20.0)
    index = open_index("opensearch", settings=settings)
    model = getattr(index, "model", None) or {}
    # The index says which model made its vectors; each answer of the endpoint is checked
    # against it, which spares a describe call at cold start.
    # Its engine/precision too: vectors of an int8 model and of an fp32 one must not be compared.
    embedder = SageMakerEmbedder.from_settings(settings, client=runtime, name=model.get("name"),
                                               dim=index.dim if model.get("name") else None,
                                               engine=model.get("engine"), precision=model.get("precision"))
    return CloudSearchService(embedder, index, limits=Limits.from_settings(settings), url_for=url_for)
