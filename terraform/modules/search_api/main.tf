# The search function: decodes the query image, embeds it on the SageMaker endpoint, queries the
# OpenSearch k-NN index and returns hits with pre-signed image URLs.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  environment = merge({
    LOOKALIKE_SAGEMAKER_ENDPOINT     = var.sagemaker_endpoint_name
    LOOKALIKE_OPENSEARCH_URL         = var.opensearch.url
    LOOKALIKE_OPENSEARCH_INDEX       = var.opensearch.index
    LOOKALIKE_OPENSEARCH_AUTH        = "sigv4"
    LOOKALIKE_OPENSEARCH_MAX_RETRIES = tostring(var.opensearch_max_retries)
    LOOKALIKE_IMAGES_BUCKET          = var.images.bucket_name
    LOOKALIKE_IMAGES_PREFIX          = var.images.prefix
    LOOKALIKE_CORS_ORIGINS           = join(",", var.cors_origins)
    LOOKALIKE_URL_TTL_SECONDS        = tostring(var.images.url_ttl_seconds)
  }, var.environment)
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway only; a dead-letter queue applies to asynchronous invocations.
  #checkov:skip=CKV_AWS_117:The function reaches only AWS APIs (SageMaker, OpenSearch over SigV4, S3 presigning); a VPC would add NAT or endpoints without narrowing access further.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile; the package is built by `make build` and stored in the private, versioned artifacts bucket.
  function_name = var.name
  description   = "lookalike image search: query image -> similar images"
  role          = aws_iam_role.this.arn
  handler       = var.handler
  runtime       = var.runtime
  architectures = ["x86_64"]
  memory_size   = var.memory_size
  timeout       = var.timeout

  filename         = var.package.filename
  s3_bucket        = var.package.s3_bucket
  s3_key           = var.package.s3_key
  source_code_hash = var.package.source_code_hash

  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = local.environment
  }

  tracing_config {
    mode = var.tracing_enabled ? "Active" : "PassThrough"
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this, aws_cloudwatch_log_group.lambda]
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = "apigateway.amazonaws.com"
  # Only POST /search of this API, any stage.
  source_arn = "${aws_api_gateway_rest_api.this.execution_arn}/*/POST/search"
}

# Created here (not by Lambda on first write) so retention and encryption apply.
resource "aws_cloudwatch_log_group" "lambda" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (365 days by default); short-lived environments such as dev choose less.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}
