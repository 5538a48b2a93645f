# Least-privilege execution role of the function.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.name}-lambda"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_356:X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level permissions.
  statement {
    sid       = "EmbedQueryImage"
    actions   = ["sagemaker:InvokeEndpoint"]
    resources = [var.sagemaker_endpoint_arn]
  }

  dynamic "statement" {
    for_each = var.opensearch.domain_arn == null ? [] : [var.opensearch.domain_arn]
    # Exactly the methods the query path sends (the OpenSearch backend of lookalike.index): HEAD /<index>
    # (indices.exists) and GET /<index>/_mapping when the service starts, POST /<index>/_search
    # per query, POST /<index>/_count for GET /healthz. Writes (PUT, DELETE, _bulk) are the
    # indexer's (search_domain writer_role_arns).
    content {
      sid       = "QueryKnnIndex"
      actions   = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"]
      resources = [statement.value, "${statement.value}/*"]
    }
  }

  statement {
    sid       = "SignImageUrls"
    actions   = ["s3:GetObject"]
    resources = ["${var.images.bucket_arn}/${var.images.prefix}*"]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "DecryptImagesAndEnvironment"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }

  statement {
    sid       = "WriteFunctionLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.tracing_enabled ? [1] : []
    content {
      sid       = "WriteTraces"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "search"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

# Account-level role API Gateway uses to write stage logs (optional; one per account and region).
data "aws_iam_policy_document" "apigateway_assume" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "apigateway_cloudwatch" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  name               = "${var.name}-apigateway-cloudwatch"
  assume_role_policy = data.aws_iam_policy_document.apigateway_assume[0].json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "apigateway_cloudwatch" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  role       = aws_iam_role.apigateway_cloudwatch[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.apigateway_cloudwatch[0].arn

  depends_on = [aws_iam_role_policy_attachment.apigateway_cloudwatch]
}
