output "model_name" {
  description = "Name of the SageMaker model transform jobs run (LOOKALIKE_TRANSFORM_MODEL); null when create = false."
  value       = one(aws_sagemaker_model.this[*].name)
}

output "role_arn" {
  description = "ARN of the transform jobs' execution role; null when create = false."
  value       = one(aws_iam_role.this[*].arn)
}

output "transform_prefix" {
  description = "s3:// URL under which jobs keep manifests/ and output/ (LOOKALIKE_TRANSFORM_PREFIX)."
  value       = local.output_url
}

output "environment" {
  description = "The LOOKALIKE_TRANSFORM_* settings of `lookalike cloud-batch` for these jobs; null when create = false."
  value = var.create ? {
    LOOKALIKE_TRANSFORM_MODEL          = aws_sagemaker_model.this[0].name
    LOOKALIKE_TRANSFORM_PREFIX         = local.output_url
    LOOKALIKE_TRANSFORM_INPUT_PREFIXES = join(",", var.input_prefixes)
    LOOKALIKE_TRANSFORM_KMS_KEY        = var.kms_key_arn == null ? "" : var.kms_key_arn
    LOOKALIKE_TRANSFORM_INSTANCE_TYPE  = var.job.instance_type
    LOOKALIKE_TRANSFORM_INSTANCE_COUNT = tostring(var.job.instance_count)
    LOOKALIKE_TRANSFORM_MAX_CONCURRENT = tostring(var.job.max_concurrent_transforms)
    LOOKALIKE_TRANSFORM_MAX_PAYLOAD_MB = tostring(var.job.max_payload_mb)
  } : null
}
