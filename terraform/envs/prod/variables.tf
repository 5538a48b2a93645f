# Set in terraform.tfvars. environment and region configure the provider (providers.tf); the
# others go unchanged to terraform/modules/stack, which types, validates and documents them.
variable "environment" { type = string }
variable "region" { type = string }
variable "name" { type = string }
variable "force_destroy" { type = bool }
variable "log_retention_days" { type = number }
variable "opensearch" { type = any }
variable "sagemaker" { type = any }
variable "batch" { type = any }
variable "api" { type = any }
variable "website" { type = any }
