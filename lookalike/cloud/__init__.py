"""Cloud mode: the SageMaker embedder, S3 image URLs, the Lambda edge and their packaging.

The Lambda package carries ``aws``, ``sagemaker_embedder``, ``storage`` and ``lambda_app``
(Pillow + opensearch-py only; boto3 comes with the Lambda runtime, numpy is never imported).
``sagemaker_server`` and ``packaging`` are local tools.
"""
