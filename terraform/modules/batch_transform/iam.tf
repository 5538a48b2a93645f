# Execution role of transform jobs: read the model archive, the job manifests and the input
# prefixes, write the output prefix; KMS for the stack's key; pull the image; write job logs.

data "aws_iam_policy_document" "assume" {
  count = var.create ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  count = var.create ? 1 : 0

  name               = "${var.name}-transform"
  assume_role_policy = data.aws_iam_policy_document.assume[0].json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  #checkov:skip=CKV_AWS_356:ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions; the latter is limited by namespace.
  #checkov:skip=CKV_AWS_111:ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions; the latter is limited by namespace.
  count = var.create ? 1 : 0

  statement {
    sid       = "ReadModelArchive"
    actions   = ["s3:GetObject"]
    resources = [var.model_data_object_arn]
  }

  statement {
    sid       = "ReadJobManifests"
    actions   = ["s3:GetObject"]
    resources = [local.manifests_arn]
  }

  statement {
    sid       = "ReadInputImages"
    actions   = ["s3:GetObject"]
    resources = [for i in local.inputs : "arn:${data.aws_partition.current.partition}:s3:::${i.bucket}/${i.prefix}*"]
  }

  dynamic "statement" {
    for_each = local.input_buckets
    content {
      sid       = "ListInputPrefixes${index(local.input_buckets, statement.value)}"
      actions   = ["s3:ListBucket"]
      resources = ["arn:${data.aws_partition.current.partition}:s3:::${statement.value}"]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [for i in local.inputs : "${i.prefix}*" if i.bucket == statement.value]
      }
    }
  }

  statement {
    sid       = "WriteJobOutputs"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.outputs_arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "UseStackKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    # The job's ML storage volume is encrypted with the key (VolumeKmsKeyId): EBS takes a grant.
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "EncryptJobVolume"
      actions   = ["kms:CreateGrant"]
      resources = [statement.value]
      condition {
        test     = "Bool"
        variable = "kms:GrantIsForAWSResource"
        values   = ["true"]
      }
    }
  }

  statement {
    sid = "PullInferenceImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = ["arn:${data.aws_partition.current.partition}:ecr:${local.image_region}:${local.image_registry}:repository/${local.image_repository}"]
  }

  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "WriteJobLogs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [local.log_group_arn, "${local.log_group_arn}:*"]
  }

  statement {
    sid       = "PublishJobMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/TransformJobs", "aws/sagemaker/TransformJobs"]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  count = var.create ? 1 : 0

  name   = "batch-transform"
  role   = aws_iam_role.this[0].id
  policy = data.aws_iam_policy_document.this[0].json
}
