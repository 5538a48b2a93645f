# hosting = "cloudfront": HTTPS in front of the private bucket, read through origin access control.

locals {
  # AWS managed cache policy "CachingOptimized" (a stable ID); it honours Cache-Control.
  managed_cache_policy_caching_optimized = "658327ea-f89d-4fab-a63d-7e88639e58f6"
}

resource "aws_cloudfront_response_headers_policy" "this" {
  count = local.website ? 0 : 1

  name    = "${var.bucket_name}-security-headers"
  comment = "Security headers of the lookalike page"

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    content_type_options {
      override = true
    }
    frame_options {
      frame_option = "DENY"
      override     = true
    }
    referrer_policy {
      referrer_policy = "strict-origin-when-cross-origin"
      override        = true
    }
  }
}

resource "aws_cloudfront_origin_access_control" "this" {
  count = local.website ? 0 : 1

  name                              = var.bucket_name
  description                       = "lookalike web page bucket ${var.bucket_name}"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_distribution" "this" {
  #checkov:skip=CKV_AWS_68:A WAF web ACL costs a fixed monthly fee for a static page; pass cloudfront.web_acl_arn to attach one.
  #checkov:skip=CKV2_AWS_47:A WAF web ACL costs a fixed monthly fee for a static page; pass cloudfront.web_acl_arn to attach one.
  #checkov:skip=CKV_AWS_86:Access logs of a static public page are not kept (the API keeps its own access log).
  #checkov:skip=CKV_AWS_174:The default *.cloudfront.net certificate fixes the minimum protocol; set a custom domain and ACM certificate to raise it to TLSv1.2_2021.
  #checkov:skip=CKV2_AWS_42:Served on the default *.cloudfront.net domain; a custom domain and certificate are outside this stack.
  #checkov:skip=CKV_AWS_310:A single S3 origin; S3 is itself multi-AZ and the content is regenerated on deploy.
  #checkov:skip=CKV_AWS_374:The demo page is meant to be reachable worldwide.
  count = local.website ? 0 : 1

  enabled             = true
  is_ipv6_enabled     = true
  comment             = "lookalike web page"
  default_root_object = "index.html"
  price_class         = var.cloudfront.price_class
  web_acl_id          = var.cloudfront.web_acl_arn

  origin {
    origin_id                = "s3"
    domain_name              = aws_s3_bucket.this.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.this[0].id
  }

  default_cache_behavior {
    target_origin_id           = "s3"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = local.managed_cache_policy_caching_optimized
    response_headers_policy_id = aws_cloudfront_response_headers_policy.this[0].id
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = true
  }

  tags = var.tags
}
