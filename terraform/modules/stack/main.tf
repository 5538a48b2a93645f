# The lookalike stack: artifacts → SageMaker endpoint + OpenSearch domain → search API → web page,
# plus the model of batch ingest jobs.
# opensearch.create / sagemaker.create = false use existing ones instead (e.g. on an emulator).
# Every environment (terraform/envs/<env>) is one call of this module with its own settings.

data "aws_caller_identity" "current" {
  count = var.account_id == null ? 1 : 0
}

data "aws_region" "current" {}

locals {
  account_id = var.account_id != null ? var.account_id : data.aws_caller_identity.current[0].account_id
  # Relative to this module, so the defaults hold whichever environment calls it.
  artifacts_dir = coalesce(var.artifacts_dir, "${path.module}/../../../dist")
  web_dir       = coalesce(var.web_dir, "${path.module}/../../../web")
}

module "artifacts" {
  source = "../artifacts"

  name_prefix        = var.name
  account_id         = local.account_id
  model_archive_path = "${local.artifacts_dir}/model.tar.gz"
  lambda_zip_path    = "${local.artifacts_dir}/lambda.zip"
  images_prefix      = "images/"
  force_destroy      = var.force_destroy
}

module "search_domain" {
  source = "../search_domain"

  create              = var.opensearch.create
  existing_endpoint   = var.opensearch.existing_endpoint
  existing_domain_arn = var.opensearch.existing_domain_arn
  domain_name         = var.name
  engine_version      = var.opensearch.engine_version
  cluster = {
    instance_type            = var.opensearch.instance_type
    instance_count           = var.opensearch.instance_count
    zone_awareness_enabled   = var.opensearch.zone_awareness_enabled
    dedicated_master_enabled = var.opensearch.dedicated_master_enabled
  }
  ebs = {
    volume_size = var.opensearch.volume_size
  }
  vpc = var.opensearch.subnet_ids == null ? null : {
    subnet_ids         = var.opensearch.subnet_ids
    security_group_ids = var.opensearch.security_group_ids
  }
  reader_role_arns   = [module.search_api.role_arn]
  writer_role_arns   = var.opensearch.indexer_role_arns
  kms_key_arn        = module.artifacts.kms_key_arn
  log_retention_days = var.log_retention_days
}

module "inference_endpoint" {
  source = "../inference_endpoint"

  create                 = var.sagemaker.create
  existing_endpoint_name = var.sagemaker.existing_endpoint_name
  name                   = var.name
  model_data_url         = module.artifacts.model_archive_url
  model_data_object_arn  = module.artifacts.model_archive_object_arn
  image = {
    tag = var.sagemaker.image_tag
  }
  compute = {
    type              = var.sagemaker.type
    memory_size_in_mb = var.sagemaker.memory_size_in_mb
    max_concurrency   = var.sagemaker.max_concurrency
    instance_type     = var.sagemaker.instance_type
    instance_count    = var.sagemaker.instance_count
  }
  kms_key_arn        = module.artifacts.kms_key_arn
  log_retention_days = var.log_retention_days
}

# The model Batch Transform jobs run (`lookalike cloud-batch`, `make ingest`): the endpoint's image,
# archive and environment; it reads the images prefix (and batch.input_prefixes), writes batch/.
module "batch_transform" {
  source = "../batch_transform"

  create                = var.sagemaker.create && var.batch.create
  name                  = "${var.name}-batch"
  account_id            = local.account_id
  image_uri             = module.inference_endpoint.image_uri
  model_data_url        = module.artifacts.model_archive_url
  model_data_object_arn = module.artifacts.model_archive_object_arn
  environment           = module.inference_endpoint.container_environment
  input_prefixes        = distinct(concat(["s3://${module.artifacts.images_bucket_name}/${module.artifacts.images_prefix}"], var.batch.input_prefixes))
  artifacts = {
    bucket_name = module.artifacts.artifacts_bucket_name
    bucket_arn  = module.artifacts.artifacts_bucket_arn
    prefix      = "batch/"
  }
  kms_key_arn = module.artifacts.kms_key_arn
  job = {
    instance_type             = var.batch.instance_type
    instance_count            = var.batch.instance_count
    max_concurrent_transforms = var.batch.max_concurrent_transforms
    max_payload_mb            = var.batch.max_payload_mb
  }
}

module "search_api" {
  source = "../search_api"

  name    = "${var.name}-search"
  package = module.artifacts.lambda_package

  sagemaker_endpoint_name = module.inference_endpoint.endpoint_name
  sagemaker_endpoint_arn  = module.inference_endpoint.endpoint_arn
  opensearch = {
    url        = module.search_domain.url
    index      = var.opensearch.index
    domain_arn = module.search_domain.domain_arn
  }
  opensearch_max_retries = var.api.opensearch_max_retries
  images = {
    bucket_name     = module.artifacts.images_bucket_name
    bucket_arn      = module.artifacts.images_bucket_arn
    prefix          = module.artifacts.images_prefix
    url_ttl_seconds = var.api.url_ttl_seconds
  }
  cors_origins = concat([module.frontend_site.origin], var.api.extra_cors_origins)

  stage_name = var.api.stage_name
  throttling = {
    rate_limit  = var.api.rate_limit
    burst_limit = var.api.burst_limit
  }
  api_key = {
    enabled      = var.api.api_key_enabled
    quota_limit  = var.api.quota_limit
    quota_period = var.api.quota_period
  }
  manage_account_cloudwatch_role = var.api.manage_account_cloudwatch_role
  memory_size                    = var.api.memory_size
  reserved_concurrency           = var.api.reserved_concurrency
  kms_key_arn                    = module.artifacts.kms_key_arn
  log_retention_days             = var.log_retention_days
}

module "frontend_site" {
  source = "../frontend_site"

  bucket_name    = "${var.name}-web"
  hosting        = var.website.hosting
  web_dir        = local.web_dir
  api_url        = module.search_api.api_url
  expose_api_key = var.website.expose_api_key
  api_key        = var.website.expose_api_key ? module.search_api.api_key : null
  cloudfront = {
    price_class = var.website.price_class
  }
}
