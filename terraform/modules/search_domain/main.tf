# OpenSearch Service domain holding the k-NN index of image embeddings. IAM-only access: the
# domain policy names the reader and writer roles, requests are SigV4-signed.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  endpoint = var.create ? aws_opensearch_domain.this[0].endpoint : var.existing_endpoint
  arn      = var.create ? aws_opensearch_domain.this[0].arn : var.existing_domain_arn
}

resource "aws_opensearch_domain" "this" {
  #checkov:skip=CKV2_AWS_52:Access is IAM-only (domain policy naming roles + SigV4). Fine-grained access control would also need every role mapped inside the security plugin after creation.
  #checkov:skip=CKV_AWS_317:Audit logs need fine-grained access control (see CKV2_AWS_52); index, search-slow and application logs are published.
  #checkov:skip=CKV_AWS_137:VPC placement is a module input (var.vpc); the public endpoint is closed by the IAM-only access policy and enforced HTTPS.
  #checkov:skip=CKV_AWS_318:Dedicated masters are a module input (cluster.dedicated_master_enabled); small environments run without them.
  count = var.create ? 1 : 0

  domain_name    = var.domain_name
  engine_version = var.engine_version

  cluster_config {
    instance_type            = var.cluster.instance_type
    instance_count           = var.cluster.instance_count
    zone_awareness_enabled   = var.cluster.zone_awareness_enabled
    dedicated_master_enabled = var.cluster.dedicated_master_enabled
    dedicated_master_type    = var.cluster.dedicated_master_enabled ? var.cluster.dedicated_master_type : null
    dedicated_master_count   = var.cluster.dedicated_master_enabled ? var.cluster.dedicated_master_count : null

    dynamic "zone_awareness_config" {
      for_each = var.cluster.zone_awareness_enabled ? [1] : []
      content {
        availability_zone_count = var.cluster.availability_zone_count
      }
    }
  }

  ebs_options {
    ebs_enabled = true
    volume_size = var.ebs.volume_size
    volume_type = var.ebs.volume_type
    iops        = var.ebs.iops
    throughput  = var.ebs.throughput
  }

  encrypt_at_rest {
    enabled    = true
    kms_key_id = var.kms_key_arn
  }

  node_to_node_encryption {
    enabled = true
  }

  domain_endpoint_options {
    enforce_https       = true
    tls_security_policy = "Policy-Min-TLS-1-2-2019-07"
  }

  dynamic "vpc_options" {
    for_each = var.vpc == null ? [] : [var.vpc]
    content {
      subnet_ids         = vpc_options.value.subnet_ids
      security_group_ids = vpc_options.value.security_group_ids
    }
  }

  dynamic "log_publishing_options" {
    for_each = aws_cloudwatch_log_group.this
    content {
      log_type                 = log_publishing_options.key
      cloudwatch_log_group_arn = log_publishing_options.value.arn
    }
  }

  tags = var.tags

  depends_on = [aws_cloudwatch_log_resource_policy.this]
}

data "aws_iam_policy_document" "readers" {
  count = var.create && length(var.reader_role_arns) > 0 ? 1 : 0

  statement {
    sid       = "Readers"
    actions   = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"]
    resources = ["${aws_opensearch_domain.this[0].arn}/*"]
    principals {
      type        = "AWS"
      identifiers = var.reader_role_arns
    }
  }
}

data "aws_iam_policy_document" "writers" {
  count = var.create && length(var.writer_role_arns) > 0 ? 1 : 0

  statement {
    sid       = "Writers"
    actions   = ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut", "es:ESHttpDelete", "es:ESHttpPatch"]
    resources = ["${aws_opensearch_domain.this[0].arn}/*"]
    principals {
      type        = "AWS"
      identifiers = var.writer_role_arns
    }
  }
}

data "aws_iam_policy_document" "access" {
  count = var.create ? 1 : 0

  source_policy_documents = concat(data.aws_iam_policy_document.readers[*].json, data.aws_iam_policy_document.writers[*].json)
}

# A separate policy resource (not access_policies on the domain) so roles created after the
# domain, such as the Lambda's role that needs the domain endpoint, can be granted access.
resource "aws_opensearch_domain_policy" "this" {
  count = var.create && length(concat(var.reader_role_arns, var.writer_role_arns)) > 0 ? 1 : 0

  domain_name     = aws_opensearch_domain.this[0].domain_name
  access_policies = data.aws_iam_policy_document.access[0].json
}
