"""Build tools: byte-reproducible ``model.tar.gz`` and ``lambda.zip``, the web page's generated
limits, and a local server speaking SageMaker's wire protocol over a model archive."""
