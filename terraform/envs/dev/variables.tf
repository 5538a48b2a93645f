variable "environment" {
  description = "Environment name (dev, prod, ...), used in tags."
  type        = string
}

variable "region" {
  description = "AWS region of the whole stack."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as \"eu-west-1\"."
  }
}

variable "name" {
  description = "Name prefix of every resource (also of the S3 buckets, so it should be globally distinctive)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,26}$", var.name))
    error_message = "name must be 3-27 lowercase letters, digits or hyphens starting with a letter (it names the OpenSearch domain, limited to 28 characters, and S3 buckets)."
  }
}

variable "account_id" {
  description = "AWS account ID. Null looks it up with STS (sts:GetCallerIdentity); set it to plan without that call."
  type        = string
  default     = null
}

variable "artifacts_dir" {
  description = "Folder holding model.tar.gz and lambda.zip from `make build`; null means <repo>/dist."
  type        = string
  default     = null
}

variable "web_dir" {
  description = "Folder of the static web page; null means <repo>/web."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let `terraform destroy` remove the artifacts and images buckets with their content."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group of the stack, in days."
  type        = number
  default     = 365
}

variable "opensearch" {
  description = "The OpenSearch domain (unset attributes take the search_domain module's defaults). create = false uses existing_endpoint instead."
  type = object({
    create                   = optional(bool, true)
    existing_endpoint        = optional(string)
    existing_domain_arn      = optional(string)
    index                    = optional(string, "lookalike")
    engine_version           = optional(string, "OpenSearch_2.17")
    instance_type            = optional(string)
    instance_count           = optional(number)
    zone_awareness_enabled   = optional(bool)
    dedicated_master_enabled = optional(bool)
    volume_size              = optional(number)
    subnet_ids               = optional(list(string))
    security_group_ids       = optional(list(string))
  })
  default = {}
}

variable "indexer_role_arns" {
  description = "IAM roles that run `lookalike cloud-index` (create the index, write documents): they get write access on the domain. Add the role you deploy with."
  type        = list(string)
  default     = []
}

variable "sagemaker" {
  description = "The inference endpoint (unset attributes take the inference_endpoint module's defaults)."
  type = object({
    image_tag         = optional(string)
    type              = optional(string)
    memory_size_in_mb = optional(number)
    max_concurrency   = optional(number)
    instance_type     = optional(string)
    instance_count    = optional(number)
  })
  default = {}
}

variable "api" {
  description = "The search API and its function (unset attributes take the search_api module's defaults)."
  type = object({
    stage_name                     = optional(string, "v1")
    rate_limit                     = optional(number)
    burst_limit                    = optional(number)
    api_key_enabled                = optional(bool, true)
    quota_limit                    = optional(number)
    quota_period                   = optional(string)
    manage_account_cloudwatch_role = optional(bool, false)
    memory_size                    = optional(number, 512)
    reserved_concurrency           = optional(number, -1)
    url_ttl_seconds                = optional(number)
    extra_cors_origins             = optional(list(string), [])
  })
  default = {}
}

variable "website" {
  description = "The web page: hosting \"cloudfront\" or \"s3-website\" (public bucket), and whether config.js carries the API key (public demo only: anyone can read it)."
  type = object({
    hosting        = optional(string, "cloudfront")
    expose_api_key = optional(bool, false)
    price_class    = optional(string)
  })
  default = {}
}
