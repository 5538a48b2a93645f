"""Build tools: byte-reproducible ``model.tar.gz`` and ``lambda.zip`` and the web page's generated
limits. (The archive runs locally under the real SageMaker serving stack: ``make sagemaker-local``.)"""
