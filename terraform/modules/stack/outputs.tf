output "api_url" {
  description = "Invoke URL of the search API stage; POST <api_url>/search."
  value       = module.search_api.api_url
}

output "api_key" {
  description = "API key for the x-api-key header (`terraform output -raw api_key`); null when keys are off."
  value       = module.search_api.api_key
  sensitive   = true
}

output "website_url" {
  description = "URL of the search page."
  value       = module.frontend_site.website_url
}

output "opensearch_endpoint" {
  description = "Host name of the OpenSearch endpoint."
  value       = module.search_domain.endpoint
}

output "sagemaker_endpoint_name" {
  description = "Name of the SageMaker endpoint embedding query images."
  value       = module.inference_endpoint.endpoint_name
}

output "images_bucket" {
  description = "Bucket the indexed images are uploaded to (under images_prefix)."
  value       = module.artifacts.images_bucket_name
}

output "images_prefix" {
  description = "Key prefix of the indexed images."
  value       = module.artifacts.images_prefix
}

output "lambda_function_name" {
  description = "Name of the search Lambda function."
  value       = module.search_api.function_name
}

output "cloud_index_environment" {
  description = "Environment for `lookalike cloud-index` against this stack (what `make deploy IMAGES=DIR` exports): endpoint name, OpenSearch URL, index and auth, images bucket and prefix, region. OpenSearch retries stay at the library default: nobody waits on a bulk load."
  value = {
    AWS_REGION                   = data.aws_region.current.name
    AWS_DEFAULT_REGION           = data.aws_region.current.name
    LOOKALIKE_SAGEMAKER_ENDPOINT = module.inference_endpoint.endpoint_name
    LOOKALIKE_OPENSEARCH_URL     = module.search_domain.url
    LOOKALIKE_OPENSEARCH_INDEX   = var.opensearch.index
    LOOKALIKE_OPENSEARCH_AUTH    = "sigv4"
    LOOKALIKE_IMAGES_BUCKET      = module.artifacts.images_bucket_name
    LOOKALIKE_IMAGES_PREFIX      = module.artifacts.images_prefix
  }
}

output "batch_ingest_environment" {
  description = "Environment for `lookalike cloud-batch s3://...` against this stack (what `make ingest IMAGES=s3://...` exports): cloud_index_environment plus the transform model, the s3:// prefix of manifests and outputs, the prefixes the jobs may read, the KMS key and the job defaults; null when batch ingest is off."
  value = module.batch_transform.environment == null ? null : merge({
    AWS_REGION                 = data.aws_region.current.name
    AWS_DEFAULT_REGION         = data.aws_region.current.name
    LOOKALIKE_OPENSEARCH_URL   = module.search_domain.url
    LOOKALIKE_OPENSEARCH_INDEX = var.opensearch.index
    LOOKALIKE_OPENSEARCH_AUTH  = "sigv4"
    LOOKALIKE_IMAGES_BUCKET    = module.artifacts.images_bucket_name
    LOOKALIKE_IMAGES_PREFIX    = module.artifacts.images_prefix
  }, module.batch_transform.environment)
}

output "lambda_environment" {
  description = "The LOOKALIKE_* environment the search function runs with."
  value       = module.search_api.environment
}
