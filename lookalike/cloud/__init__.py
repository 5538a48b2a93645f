"""Cloud mode, the parts that run in AWS: the SageMaker embedder, S3 image URLs and the cloud
search service the Lambda serves (Pillow + opensearch-py only; boto3 comes with the Lambda
runtime, numpy is never imported). Build tools and local emulators are in ``lookalike.artifacts``.
"""
