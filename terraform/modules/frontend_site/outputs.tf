output "website_url" {
  description = "URL of the page: https://<distribution>.cloudfront.net, or http://<bucket>.s3-website-<region>.amazonaws.com. It is also the browser origin the API must allow."
  value       = local.website_url
}

output "origin" {
  description = "Browser origin of the page (scheme://host), for the API's CORS settings."
  value       = local.website_url
}

output "bucket_name" {
  description = "Name of the bucket holding the page."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the bucket holding the page."
  value       = aws_s3_bucket.this.arn
}

output "distribution_id" {
  description = "CloudFront distribution ID (null with hosting = \"s3-website\"), e.g. for cache invalidations."
  value       = one(aws_cloudfront_distribution.this[*].id)
}

output "config_js" {
  description = "The generated config.js (contains the API key when expose_api_key is true)."
  value       = local.config_js
  sensitive   = true
}

output "uploaded_files" {
  description = "Keys of the uploaded page files, config.js included."
  value       = concat(sort(tolist(local.web_files)), [aws_s3_object.config_js.key])
}
