environment = "dev"
region      = "eu-west-1"
name        = "lookalike-dev"

# Short-lived: shorter log retention, buckets removable with their content.
log_retention_days = 30
force_destroy      = true

opensearch = {
  engine_version = "OpenSearch_2.17"
  instance_type  = "t3.small.search"
  instance_count = 1
  volume_size    = 10

  # The role(s) `make deploy ENV=dev IMAGES=DIR` runs `lookalike cloud-index` as: they may
  # create and fill the index (nobody else gets into the domain).
  # indexer_role_arns = ["arn:aws:iam::123456789012:role/lookalike-deployer"]
}

sagemaker = {
  image_tag         = "2.3.0-cpu-py311"
  type              = "serverless"
  memory_size_in_mb = 2048
  max_concurrency   = 2
}

# Batch ingest (`make ingest ENV=dev IMAGES=s3://...`); prefixes beyond the images bucket's images/
# go into input_prefixes (each s3://BUCKET/PREFIX/).
batch = {
  instance_type  = "ml.c5.xlarge"
  instance_count = 1
}

api = {
  rate_limit      = 5
  burst_limit     = 10
  api_key_enabled = true
  quota_limit     = 2000
  quota_period    = "DAY"
  # Set to false when another stack in this account and region already manages it.
  manage_account_cloudwatch_role = true
  # The local page (`make demo`) may call the dev API too.
  extra_cors_origins = ["http://127.0.0.1:8000"]
}

# Plain S3 website (this one bucket publicly readable) and the key in config.js: a dev demo.
website = {
  hosting        = "s3-website"
  expose_api_key = true
}
