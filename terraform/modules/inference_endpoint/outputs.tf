output "endpoint_name" {
  description = "Name of the SageMaker endpoint (the value of LOOKALIKE_SAGEMAKER_ENDPOINT)."
  value       = aws_sagemaker_endpoint.this.name
}

output "endpoint_arn" {
  description = "ARN of the endpoint, for sagemaker:InvokeEndpoint grants."
  value       = aws_sagemaker_endpoint.this.arn
}

output "model_name" {
  description = "Name of the SageMaker model behind the endpoint."
  value       = aws_sagemaker_model.this.name
}

output "endpoint_configuration_name" {
  description = "Name of the endpoint configuration in use."
  value       = aws_sagemaker_endpoint_configuration.this.name
}

output "image_uri" {
  description = "Inference container image the model runs."
  value       = local.image_uri
}

output "role_arn" {
  description = "ARN of the SageMaker execution role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the endpoint."
  value       = aws_cloudwatch_log_group.this.name
}
