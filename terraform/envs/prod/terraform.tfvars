environment = "prod"
region      = "eu-west-1"
name        = "lookalike-prod"

log_retention_days = 365
force_destroy      = false

opensearch = {
  engine_version         = "OpenSearch_2.17"
  instance_type          = "r6g.large.search"
  instance_count         = 2
  zone_awareness_enabled = true
  volume_size            = 20

  # The role(s) `make deploy ENV=prod IMAGES=DIR` runs `lookalike cloud-index` as: they may
  # create and fill the index (nobody else gets into the domain).
  # indexer_role_arns = ["arn:aws:iam::123456789012:role/lookalike-deployer"]
}

sagemaker = {
  image_tag         = "2.3.0-cpu-py311"
  type              = "serverless"
  memory_size_in_mb = 3072
  max_concurrency   = 10
}

# Batch ingest (`make ingest ENV=prod IMAGES=s3://...`): a SageMaker Batch Transform job per run on
# the endpoint's model archive. The jobs may read the images bucket's images/ prefix; add other
# prefixes here (each s3://BUCKET/PREFIX/). Job defaults (cloud-batch flags override them):
batch = {
  # input_prefixes          = ["s3://my-photo-archive/catalogue/"]
  instance_type             = "ml.c5.xlarge"
  instance_count            = 2
  max_concurrent_transforms = 4
  max_payload_mb            = 6
}

api = {
  rate_limit      = 20
  burst_limit     = 40
  api_key_enabled = true
  quota_limit     = 20000
  quota_period    = "DAY"
  # API Gateway stage logging needs the account-level CloudWatch role once per account/region.
  manage_account_cloudwatch_role = true
}

website = {
  hosting        = "cloudfront"
  expose_api_key = false
}
