variable "name" {
  description = "Name prefix of every resource (also of the S3 buckets, so it should be globally distinctive), e.g. \"lookalike-prod\"."
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
  description = "Folder holding model.tar.gz and lambda.zip from `make build`; null means <repo>/dist. Not needed by `terraform destroy`."
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
  nullable    = false
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group of the stack, in days (a value CloudWatch Logs accepts, e.g. 30 or 365)."
  type        = number
  default     = 365
  nullable    = false
}

variable "opensearch" {
  description = "The OpenSearch domain (unset attributes take the search_domain module's defaults); create = false uses existing_endpoint (and existing_domain_arn) instead. indexer_role_arns: the IAM roles that run `lookalike cloud-index` (create the index, write documents) — add the role you deploy with."
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
    indexer_role_arns        = optional(list(string), [])
  })
  default  = {}
  nullable = false
}

variable "sagemaker" {
  description = "The inference endpoint (unset attributes take the inference_endpoint module's defaults): image_tag of the PyTorch inference image, type \"serverless\" (memory_size_in_mb, max_concurrency) or \"instance\" (instance_type, instance_count); create = false uses the existing endpoint existing_endpoint_name instead (e.g. on an emulator without SageMaker)."
  type = object({
    create                 = optional(bool, true)
    existing_endpoint_name = optional(string)
    image_tag              = optional(string)
    type                   = optional(string)
    memory_size_in_mb      = optional(number)
    max_concurrency        = optional(number)
    instance_type          = optional(string)
    instance_count         = optional(number)
  })
  default  = {}
  nullable = false
}

variable "batch" {
  description = "Batch ingest (`make ingest IMAGES=s3://...`, `lookalike cloud-batch`): create = false makes no transform model or role (also off with sagemaker.create = false); input_prefixes: s3://BUCKET/PREFIX/ the jobs may read besides the images bucket's images prefix; defaults of each job: instance_type, instance_count, max_concurrent_transforms, max_payload_mb (unset attributes take the batch_transform module's defaults)."
  type = object({
    create                    = optional(bool, true)
    input_prefixes            = optional(list(string), [])
    instance_type             = optional(string)
    instance_count            = optional(number)
    max_concurrent_transforms = optional(number)
    max_payload_mb            = optional(number)
  })
  default  = {}
  nullable = false

  # Checked here as well as in batch_transform: there the list also holds the images prefix,
  # unknown until the bucket exists, which would postpone the check to apply.
  validation {
    condition     = alltrue([for p in var.batch.input_prefixes : can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([^*?]+/)?$", p))])
    error_message = "batch.input_prefixes must be s3://BUCKET/PREFIX/ URLs ending with \"/\" (or s3://BUCKET/ for a whole bucket), without wildcards, e.g. \"s3://my-photos/catalogue/\"."
  }
}

variable "api" {
  description = "The search API and its function (unset attributes take the search_api module's defaults): stage, throttling (requests/s), API key and quota, Lambda memory and concurrency, image URL lifetime, OpenSearch retries, and browser origins allowed besides the page's own."
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
    opensearch_max_retries         = optional(number)
    extra_cors_origins             = optional(list(string), [])
  })
  default  = {}
  nullable = false
}

variable "website" {
  description = "The web page: hosting \"cloudfront\" or \"s3-website\" (public bucket), whether config.js carries the API key (public demo only: anyone can read it), and the CloudFront price class."
  type = object({
    hosting        = optional(string, "cloudfront")
    expose_api_key = optional(bool, false)
    price_class    = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = !var.website.expose_api_key || var.api.api_key_enabled
    error_message = "website.expose_api_key = true needs api.api_key_enabled = true: with keys off there is no key to write into config.js. Set one of the two differently."
  }
}
