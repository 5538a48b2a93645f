# This environment: the whole stack (terraform/modules/stack) with the settings of terraform.tfvars.
module "lookalike" {
  source = "../../modules/stack"

  name               = var.name
  force_destroy      = var.force_destroy
  log_retention_days = var.log_retention_days
  opensearch         = var.opensearch
  sagemaker          = var.sagemaker
  batch              = var.batch
  api                = var.api
  website            = var.website
}
