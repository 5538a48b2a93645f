# Private, versioned, KMS-encrypted buckets: "artifacts" holds the model archive and the Lambda
# package, "images" holds the indexed collection the search results point at.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  bucket_names = {
    artifacts = coalesce(var.bucket_names.artifacts, "${var.name_prefix}-artifacts")
    images    = coalesce(var.bucket_names.images, "${var.name_prefix}-images")
  }
  kms_key_arn = var.kms_key_arn != null ? var.kms_key_arn : aws_kms_key.this[0].arn

  # Content-addressed keys: a new build gets a new key, so the SageMaker model (whose model data
  # is copied at endpoint creation) and the Lambda code are replaced instead of silently kept.
  # A missing file stops plan/apply through the preconditions below, but not `terraform destroy`,
  # which must work without a build.
  model_present  = var.model_archive_path != null && try(fileexists(var.model_archive_path), false)
  lambda_present = var.lambda_zip_path != null && try(fileexists(var.lambda_zip_path), false)
  model_sha256   = local.model_present ? filesha256(var.model_archive_path) : "0000000000000000"
  lambda_sha256  = local.lambda_present ? filesha256(var.lambda_zip_path) : "0000000000000000"
  lambda_b64sha  = local.lambda_present ? filebase64sha256(var.lambda_zip_path) : null
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Server access logging needs a further log bucket per environment; CloudTrail data events are the recommended audit trail for these private buckets.
  #checkov:skip=CKV_AWS_144:Cross-region replication is not needed: every object here is rebuilt by `make build` or re-uploaded by `lookalike cloud-index`.
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications for these buckets.
  # checkov links only the first for_each instance to its sibling resources; the public access
  # block, versioning, KMS encryption and lifecycle below are set for every bucket of the map.
  #checkov:skip=CKV2_AWS_6:Set for every bucket by aws_s3_bucket_public_access_block.this (for_each); checkov does not resolve the second instance.
  #checkov:skip=CKV2_AWS_61:Set for every bucket by aws_s3_bucket_lifecycle_configuration.this (for_each); checkov does not resolve the second instance.
  #checkov:skip=CKV_AWS_145:Set for every bucket by aws_s3_bucket_server_side_encryption_configuration.this (SSE-KMS, for_each); checkov does not resolve the second instance.
  #checkov:skip=CKV_AWS_21:Set for every bucket by aws_s3_bucket_versioning.this (for_each); checkov does not resolve the second instance.
  for_each = local.bucket_names

  bucket        = each.value
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { Name = each.value, Purpose = each.key })
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = aws_s3_bucket.this[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = aws_s3_bucket.this

  bucket = aws_s3_bucket.this[each.key].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = aws_s3_bucket.this[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = aws_s3_bucket.this[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = aws_s3_bucket.this[each.key].id
  rule {
    id     = "expire-superseded-versions"
    status = "Enabled"
    filter {
      prefix = ""
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "tls_only" {
  for_each = aws_s3_bucket.this

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this[each.key].arn, "${aws_s3_bucket.this[each.key].arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutdatedTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this[each.key].arn, "${aws_s3_bucket.this[each.key].arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = aws_s3_bucket.this

  bucket = aws_s3_bucket.this[each.key].id
  policy = data.aws_iam_policy_document.tls_only[each.key].json

  # A bucket policy is rejected while the public access block is being written.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_object" "model" {
  count = var.model_archive_path == null ? 0 : 1

  bucket       = aws_s3_bucket.this["artifacts"].id
  key          = "models/${substr(local.model_sha256, 0, 16)}/model.tar.gz"
  source       = var.model_archive_path
  source_hash  = local.model_sha256
  content_type = "application/gzip"
  tags         = var.tags

  lifecycle {
    precondition {
      condition     = local.model_present
      error_message = "No model archive at ${var.model_archive_path}: run `make build` first."
    }
  }

  depends_on = [aws_s3_bucket_server_side_encryption_configuration.this, aws_s3_bucket_versioning.this]
}

resource "aws_s3_object" "lambda" {
  count = var.lambda_zip_path == null ? 0 : 1

  bucket       = aws_s3_bucket.this["artifacts"].id
  key          = "lambda/${substr(local.lambda_sha256, 0, 16)}/lambda.zip"
  source       = var.lambda_zip_path
  source_hash  = local.lambda_sha256
  content_type = "application/zip"
  tags         = var.tags

  lifecycle {
    precondition {
      condition     = local.lambda_present
      error_message = "No Lambda package at ${var.lambda_zip_path}: run `make build` first."
    }
  }

  depends_on = [aws_s3_bucket_server_side_encryption_configuration.this, aws_s3_bucket_versioning.this]
}
