output "artifacts_bucket_name" {
  description = "Name of the private bucket holding the model archive and the Lambda package."
  value       = aws_s3_bucket.this["artifacts"].id
}

output "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket."
  value       = aws_s3_bucket.this["artifacts"].arn
}

output "images_bucket_name" {
  description = "Name of the private bucket holding the indexed images."
  value       = aws_s3_bucket.this["images"].id
}

output "images_bucket_arn" {
  description = "ARN of the images bucket."
  value       = aws_s3_bucket.this["images"].arn
}

output "images_prefix" {
  description = "Key prefix of the indexed images in the images bucket."
  value       = var.images_prefix
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the buckets (and meant for the stack's log groups)."
  value       = local.kms_key_arn
}

output "model_archive_url" {
  description = "s3:// URL of the uploaded model archive (SageMaker model_data_url), or null when none was uploaded."
  value       = one([for o in aws_s3_object.model : "s3://${o.bucket}/${o.key}"])
}

output "model_archive_object_arn" {
  description = "ARN of the uploaded model archive object, for least-privilege read grants."
  value       = one([for o in aws_s3_object.model : "${aws_s3_bucket.this["artifacts"].arn}/${o.key}"])
}

output "lambda_package" {
  description = "Where the Lambda package was uploaded: {s3_bucket, s3_key, source_code_hash (base64 SHA-256)}, or null when none was."
  value = one([for o in aws_s3_object.lambda : {
    s3_bucket        = o.bucket
    s3_key           = o.key
    source_code_hash = local.lambda_b64sha
  }])
}

output "bucket_arns" {
  description = "Map of bucket purpose (artifacts, images) to bucket ARN."
  value       = { for k, b in aws_s3_bucket.this : k => b.arn }
}
