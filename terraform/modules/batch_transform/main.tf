# The SageMaker model Batch Transform jobs run (`lookalike cloud-batch`): the endpoint's image,
# model archive and environment, under an execution role of its own. A transform job reads its
# input and writes its output with the role of the model it runs (CreateModel ExecutionRoleArn),
# so the endpoint's model, whose role may read only the archive, cannot be used for it.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  output_url    = "s3://${var.artifacts.bucket_name}/${var.artifacts.prefix}"
  manifests_arn = "${var.artifacts.bucket_arn}/${var.artifacts.prefix}manifests/*"
  outputs_arn   = "${var.artifacts.bucket_arn}/${var.artifacts.prefix}output/*"
  # "s3://bucket/some/prefix/" → {bucket, prefix}; an empty prefix means the whole bucket.
  inputs = [for uri in var.input_prefixes : {
    bucket = split("/", trimprefix(uri, "s3://"))[0]
    prefix = join("/", slice(split("/", trimprefix(uri, "s3://")), 1, length(split("/", trimprefix(uri, "s3://")))))
  }]
  input_buckets = distinct([for i in local.inputs : i.bucket])
  # Immutable in SageMaker: a new archive, image or environment makes a new model (see the endpoint's).
  model_hash       = substr(sha1(jsonencode([var.model_data_url, var.image_uri, var.environment])), 0, 8)
  image_registry   = split(".", var.image_uri)[0]
  image_region     = split(".", var.image_uri)[3]
  image_repository = split(":", join("/", slice(split("/", var.image_uri), 1, length(split("/", var.image_uri)))))[0]
  log_group_arn    = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${var.account_id}:log-group:/aws/sagemaker/TransformJobs"
}

resource "aws_sagemaker_model" "this" {
  count = var.create ? 1 : 0

  name               = "${var.name}-${local.model_hash}"
  execution_role_arn = aws_iam_role.this[0].arn
  # The archive carries its wheels; the job's S3 reads and writes are made by SageMaker, not the container.
  enable_network_isolation = true

  primary_container {
    image          = var.image_uri
    model_data_url = var.model_data_url
    environment    = var.environment
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }

  # The role's permissions must be in place before SageMaker validates the model data.
  depends_on = [aws_iam_role_policy.this]
}
