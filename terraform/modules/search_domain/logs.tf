# CloudWatch log groups the domain publishes to, and the resource policy letting OpenSearch
# Service write into them (it must exist before the domain is created).

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (365 days by default); short-lived environments such as dev choose less.
  for_each = var.create ? var.log_types : toset([])

  name              = "/aws/opensearch/${var.domain_name}/${lower(each.key)}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "logs" {
  count = var.create ? 1 : 0

  statement {
    sid       = "OpenSearchServicePublishesLogs"
    actions   = ["logs:PutLogEvents", "logs:CreateLogStream"]
    resources = [for g in aws_cloudwatch_log_group.this : "${g.arn}:*"]

    principals {
      type        = "Service"
      identifiers = ["es.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = distinct([for g in aws_cloudwatch_log_group.this : split(":", g.arn)[4]])
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values = distinct([for g in aws_cloudwatch_log_group.this :
      "arn:${data.aws_partition.current.partition}:es:${data.aws_region.current.name}:${split(":", g.arn)[4]}:domain/${var.domain_name}"])
    }
  }
}

resource "aws_cloudwatch_log_resource_policy" "this" {
  count = var.create && length(var.log_types) > 0 ? 1 : 0

  policy_name     = "${var.domain_name}-opensearch-logs"
  policy_document = data.aws_iam_policy_document.logs[0].json
}
