# SageMaker model + endpoint configuration + endpoint serving the image embedder (or, with
# create = false, the name and ARN of an existing endpoint passed through).

data "aws_partition" "current" {}
data "aws_region" "current" {}

# Only to derive an existing endpoint's ARN (create = false): one sts:GetCallerIdentity.
data "aws_caller_identity" "current" {
  count = var.create ? 0 : 1
}

# Resolved by the provider from its built-in table of AWS Deep Learning Container registries:
# no API call is made.
data "aws_sagemaker_prebuilt_ecr_image" "this" {
  count = var.image.image_uri == null ? 1 : 0

  repository_name = var.image.repository
  image_tag       = var.image.tag
}

locals {
  image_uri = var.image.image_uri != null ? var.image.image_uri : data.aws_sagemaker_prebuilt_ecr_image.this[0].registry_path
  # "<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>" → ECR repository ARN for the pull grant.
  image_registry   = split(".", local.image_uri)[0]
  image_region     = split(".", local.image_uri)[3]
  image_repository = split(":", join("/", slice(split("/", local.image_uri), 1, length(split("/", local.image_uri)))))[0]

  serverless = var.compute.type == "serverless"
  # What the SageMaker PyTorch toolkit needs to run code/inference.py; batch_transform runs the
  # same archive with the same environment (output container_environment).
  container_environment = merge({
    SAGEMAKER_PROGRAM             = "inference.py"
    SAGEMAKER_SUBMIT_DIRECTORY    = "/opt/ml/model/code"
    SAGEMAKER_CONTAINER_LOG_LEVEL = "20"
    SAGEMAKER_REGION              = data.aws_region.current.name
    # One TorchServe worker: unset, TorchServe starts one per vCPU, and a second adds no throughput
    # (ONNX Runtime already uses every core) while costing ~750 MB and 1.4-1.7x latency (docs/BENCHMARKS.md).
    SAGEMAKER_MODEL_SERVER_WORKERS = "1"
  }, var.environment)
  network_isolation = coalesce(var.enable_network_isolation, !local.serverless)
  # Model and configuration are immutable in SageMaker: a hash of their inputs in the name lets
  # Terraform create the new one before the endpoint switches over and the old one is deleted.
  model_hash  = substr(sha1(jsonencode([var.model_data_url, local.image_uri, var.environment, local.network_isolation])), 0, 8)
  config_hash = substr(sha1(jsonencode([local.model_hash, var.compute, var.kms_key_arn])), 0, 8)

  # SageMaker ARNs carry the endpoint name in lower case.
  existing_endpoint_arn = var.create ? null : join(":", [
    "arn", data.aws_partition.current.partition, "sagemaker", data.aws_region.current.name,
    data.aws_caller_identity.current[0].account_id, "endpoint/${lower(var.existing_endpoint_name)}",
  ])
}

resource "aws_sagemaker_model" "this" {
  #checkov:skip=CKV_AWS_370:Network isolation is on for instance endpoints; serverless endpoints do not support it (var.enable_network_isolation).
  count = var.create ? 1 : 0

  name                     = "${var.name}-${local.model_hash}"
  execution_role_arn       = aws_iam_role.this[0].arn
  enable_network_isolation = local.network_isolation

  primary_container {
    image          = local.image_uri
    model_data_url = var.model_data_url
    environment    = local.container_environment
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }

  # The role's permissions must be in place before SageMaker validates the model data.
  depends_on = [aws_iam_role_policy.this]
}

resource "aws_sagemaker_endpoint_configuration" "this" {
  #checkov:skip=CKV_AWS_98:Serverless endpoints do not accept a KMS key (no instance storage); with compute.type = "instance" the module sets kms_key_arn.
  count = var.create ? 1 : 0

  name        = "${var.name}-${local.config_hash}"
  kms_key_arn = local.serverless ? null : var.kms_key_arn

  production_variants {
    variant_name           = "AllTraffic"
    model_name             = aws_sagemaker_model.this[0].name
    instance_type          = local.serverless ? null : var.compute.instance_type
    initial_instance_count = local.serverless ? null : var.compute.instance_count

    dynamic "serverless_config" {
      for_each = local.serverless ? [1] : []
      content {
        memory_size_in_mb       = var.compute.memory_size_in_mb
        max_concurrency         = var.compute.max_concurrency
        provisioned_concurrency = var.compute.provisioned_concurrency
      }
    }
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_sagemaker_endpoint" "this" {
  count = var.create ? 1 : 0

  name                 = var.name
  endpoint_config_name = aws_sagemaker_endpoint_configuration.this[0].name
  tags                 = var.tags

  depends_on = [aws_cloudwatch_log_group.this]
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (365 days by default); short-lived environments such as dev choose less.
  count = var.create ? 1 : 0

  name              = "/aws/sagemaker/Endpoints/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}
