# The stack's outputs (described in terraform/modules/stack/outputs.tf).
output "api_url" { value = module.lookalike.api_url }
output "website_url" { value = module.lookalike.website_url }
output "opensearch_endpoint" { value = module.lookalike.opensearch_endpoint }
output "sagemaker_endpoint_name" { value = module.lookalike.sagemaker_endpoint_name }
output "images_bucket" { value = module.lookalike.images_bucket }
output "images_prefix" { value = module.lookalike.images_prefix }
output "lambda_function_name" { value = module.lookalike.lambda_function_name }
output "cloud_index_environment" { value = module.lookalike.cloud_index_environment }
output "batch_ingest_environment" { value = module.lookalike.batch_ingest_environment }
output "lambda_environment" { value = module.lookalike.lambda_environment }

output "api_key" {
  value     = module.lookalike.api_key
  sensitive = true
}
