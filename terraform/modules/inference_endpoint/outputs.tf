output "endpoint_name" {
  description = "Name of the SageMaker endpoint (the value of LOOKALIKE_SAGEMAKER_ENDPOINT); existing_endpoint_name when create = false."
  value       = var.create ? aws_sagemaker_endpoint.this[0].name : var.existing_endpoint_name
}

output "endpoint_arn" {
  description = "ARN of the endpoint (derived from existing_endpoint_name when create = false), for sagemaker:InvokeEndpoint grants."
  value       = var.create ? aws_sagemaker_endpoint.this[0].arn : local.existing_endpoint_arn
}

output "model_name" {
  description = "Name of the SageMaker model behind the endpoint (null when create = false)."
  value       = one(aws_sagemaker_model.this[*].name)
}

output "endpoint_configuration_name" {
  description = "Name of the endpoint configuration in use (null when create = false)."
  value       = one(aws_sagemaker_endpoint_configuration.this[*].name)
}

output "image_uri" {
  description = "Inference container image the model runs."
  value       = local.image_uri
}

output "role_arn" {
  description = "ARN of the SageMaker execution role (null when create = false)."
  value       = one(aws_iam_role.this[*].arn)
}

output "log_group_name" {
  description = "CloudWatch log group of the endpoint (null when create = false)."
  value       = one(aws_cloudwatch_log_group.this[*].name)
}

output "container_environment" {
  description = "Environment of the inference container (the toolkit's SAGEMAKER_* variables and var.environment), for other models of the same archive such as batch transform's."
  value       = local.container_environment
}
