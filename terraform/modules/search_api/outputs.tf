output "api_url" {
  description = "Invoke URL of the stage (https://<api>.execute-api.<region>.amazonaws.com/<stage>); the search endpoint is POST <api_url>/search."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "search_url" {
  description = "Full URL of POST /search."
  value       = "${aws_api_gateway_stage.this.invoke_url}/search"
}

output "api_key" {
  description = "Value of the API key clients send as x-api-key (null when api_key.enabled is false)."
  value       = one(aws_api_gateway_api_key.this[*].value)
  sensitive   = true
}

output "api_key_id" {
  description = "ID of the API key (null when disabled)."
  value       = one(aws_api_gateway_api_key.this[*].id)
}

output "rest_api_id" {
  description = "ID of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "stage_name" {
  description = "Name of the deployed stage."
  value       = aws_api_gateway_stage.this.stage_name
}

output "function_name" {
  description = "Name of the search Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the search Lambda function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the function's execution role (grant it search access on the OpenSearch domain)."
  value       = aws_iam_role.this.arn
}

output "environment" {
  description = "The LOOKALIKE_* environment the function runs with (also what `lookalike cloud-index` needs)."
  value       = local.environment
}
