# The static search page: web/ files plus a generated config.js that points the page at the API.

locals {
  website = var.hosting == "s3-website"

  content_types = merge({
    html        = "text/html; charset=utf-8"
    js          = "text/javascript; charset=utf-8"
    mjs         = "text/javascript; charset=utf-8"
    css         = "text/css; charset=utf-8"
    json        = "application/json"
    map         = "application/json"
    svg         = "image/svg+xml"
    png         = "image/png"
    jpg         = "image/jpeg"
    jpeg        = "image/jpeg"
    gif         = "image/gif"
    webp        = "image/webp"
    ico         = "image/x-icon"
    txt         = "text/plain; charset=utf-8"
    webmanifest = "application/manifest+json"
    woff2       = "font/woff2"
  }, var.content_types)

  # config.js is generated below; editor and OS droppings are never published.
  web_files = toset([
    for f in fileset(var.web_dir, "**") : f
    if f != "config.js" && !can(regex("(^|/)\\.|~$", f))
  ])

  config_js = format(
    "window.LOOKALIKE_CONFIG = { apiBase: %s, apiKey: %s };\n",
    jsonencode(var.api_url),
    jsonencode(var.expose_api_key ? var.api_key : ""),
  )

  website_url = local.website ? "http://${aws_s3_bucket_website_configuration.this[0].website_endpoint}" : "https://${aws_cloudfront_distribution.this[0].domain_name}"
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:The page is public content regenerated from web/ on every deploy; CloudFront or website access logs are not kept.
  #checkov:skip=CKV_AWS_144:Cross-region replication is not needed: the content is regenerated from web/ on every deploy.
  #checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications for the page bucket.
  #checkov:skip=CKV2_AWS_6:The bucket has a public access block; with hosting = "s3-website", chosen explicitly, its policy settings are opened for this bucket only.
  #checkov:skip=CKV_AWS_145:Public page assets: SSE-S3 keeps them encrypted at rest; a KMS key would have to be opened to anonymous website readers or CloudFront.
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { Name = var.bucket_name, Purpose = "website" })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  #checkov:skip=CKV_AWS_56:Only with hosting = "s3-website", chosen explicitly, this one bucket gets a public-read policy; with CloudFront all four settings are true.
  #checkov:skip=CKV_AWS_55:Only with hosting = "s3-website", chosen explicitly, this one bucket gets a public-read policy; with CloudFront all four settings are true.
  #checkov:skip=CKV_AWS_53:Only with hosting = "s3-website", chosen explicitly, this one bucket gets a public-read policy; with CloudFront all four settings are true.
  #checkov:skip=CKV_AWS_54:Only with hosting = "s3-website", chosen explicitly, this one bucket gets a public-read policy; with CloudFront all four settings are true.
  bucket = aws_s3_bucket.this.id

  # ACLs stay blocked either way; only the bucket policy may open the website bucket.
  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = !local.website
  restrict_public_buckets = !local.website
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    id     = "expire-superseded-versions"
    status = "Enabled"
    filter {
      prefix = ""
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_website_configuration" "this" {
  count = local.website ? 1 : 0

  bucket = aws_s3_bucket.this.id
  index_document {
    suffix = "index.html"
  }
  error_document {
    key = "index.html"
  }
}

# hosting = "s3-website": anyone may read the page objects (nothing else) of this one bucket.
data "aws_iam_policy_document" "public_read" {
  count = local.website ? 1 : 0

  statement {
    sid       = "PublicReadForStaticWebsite"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }
}

# hosting = "cloudfront": only this distribution reads, over TLS. (The website endpoint speaks
# plain HTTP, so TLS can only be required with CloudFront.)
data "aws_iam_policy_document" "cloudfront_read" {
  count = local.website ? 0 : 1

  statement {
    sid       = "CloudFrontReadsThroughOriginAccessControl"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.this.arn}/*"]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.this[0].arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
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
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = local.website ? data.aws_iam_policy_document.public_read[0].json : data.aws_iam_policy_document.cloudfront_read[0].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_object" "web" {
  for_each = local.web_files

  bucket       = aws_s3_bucket.this.id
  key          = each.value
  source       = "${var.web_dir}/${each.value}"
  source_hash  = filemd5("${var.web_dir}/${each.value}")
  content_type = lookup(local.content_types, lower(reverse(split(".", each.value))[0]), "application/octet-stream")
  # File names carry no content hash: let browsers revalidate the page, cache the rest briefly.
  cache_control = endswith(each.value, ".html") ? "no-cache" : "public, max-age=300"
  tags          = var.tags

  depends_on = [aws_s3_bucket_server_side_encryption_configuration.this]
}

resource "aws_s3_object" "config_js" {
  bucket        = aws_s3_bucket.this.id
  key           = "config.js"
  content       = local.config_js
  content_type  = local.content_types["js"]
  cache_control = "no-cache"
  tags          = var.tags

  depends_on = [aws_s3_bucket_server_side_encryption_configuration.this]
}
