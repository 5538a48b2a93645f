variable "name" {
  description = "Name of the Lambda function and the REST API; roles and log groups are named after it."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9-_]{1,50}$", var.name))
    error_message = "name must be 1-50 letters, digits, hyphens or underscores (suffixes are appended for the role and log groups)."
  }
}

variable "package" {
  description = "The Lambda deployment package: either s3_bucket + s3_key (e.g. the artifacts module's lambda_package output) or a local filename; source_code_hash (base64 SHA-256) redeploys on change."
  type = object({
    s3_bucket        = optional(string)
    s3_key           = optional(string)
    filename         = optional(string)
    source_code_hash = optional(string)
  })

  validation {
    condition     = (var.package.filename != null) != (var.package.s3_bucket != null && var.package.s3_key != null)
    error_message = "Set either package.filename (a local zip) or both package.s3_bucket and package.s3_key, not both and not neither."
  }
}

variable "handler" {
  description = "Lambda handler, module.function."
  type        = string
  default     = "handler.handler"
}

variable "runtime" {
  description = "Lambda runtime of the package."
  type        = string
  default     = "python3.12"

  validation {
    condition     = can(regex("^python3\\.(1[1-9])$", var.runtime))
    error_message = "runtime must be a Python runtime the package is built for, python3.11 or newer (e.g. \"python3.12\")."
  }
}

variable "memory_size" {
  description = "Lambda memory in MB (CPU scales with it)."
  type        = number
  default     = 512

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  description = "Lambda timeout in seconds. API Gateway stops waiting after 29 s, so more is pointless."
  type        = number
  default     = 29

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 29
    error_message = "timeout must be 1-29 seconds (the API Gateway integration limit)."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions of the function: caps its cost and load on the endpoint. -1 leaves it unreserved (new accounts cannot reserve below their unreserved minimum)."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrency >= -1
    error_message = "reserved_concurrency must be -1 (unreserved) or a non-negative number of executions."
  }
}

variable "sagemaker_endpoint_name" {
  description = "Name of the SageMaker endpoint that embeds the query image."
  type        = string
}

variable "sagemaker_endpoint_arn" {
  description = "ARN of that endpoint; the function may invoke this endpoint only."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:endpoint/", var.sagemaker_endpoint_arn))
    error_message = "sagemaker_endpoint_arn must be a SageMaker endpoint ARN (arn:aws:sagemaker:<region>:<account>:endpoint/<name>)."
  }
}

variable "opensearch" {
  description = "The k-NN index the function queries: url (https://<endpoint>), index name, and the domain ARN to scope es:ESHttpGet/Head/Post to (null: no grant, e.g. a cluster outside AWS)."
  type = object({
    url        = string
    index      = optional(string, "lookalike")
    domain_arn = optional(string)
  })

  validation {
    condition     = can(regex("^https?://[^/]+$", var.opensearch.url)) && can(regex("^[a-z0-9][a-z0-9_-]*$", var.opensearch.index))
    error_message = "opensearch.url must be a base URL without path (https://<domain endpoint>) and opensearch.index a lowercase index name."
  }
}

variable "opensearch_max_retries" {
  description = "Retries of an OpenSearch request that failed with 429, 5xx or a connection error, each after a growing back-off (LOOKALIKE_OPENSEARCH_MAX_RETRIES). Keep it low: the API answers synchronously and API Gateway gives up after 29 s; the library default of 5 takes about 15 s before a 503."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.opensearch_max_retries >= 0 && floor(var.opensearch_max_retries) == var.opensearch_max_retries
    error_message = "opensearch_max_retries must be a whole number >= 0 (0 fails at once; 1 or 2 suit a synchronous API)."
  }
}

variable "images" {
  description = "Where the indexed images live: the function signs GET URLs for objects under bucket/prefix, valid for url_ttl_seconds."
  type = object({
    bucket_name     = string
    bucket_arn      = string
    prefix          = optional(string, "images/")
    url_ttl_seconds = optional(number, 900)
  })

  validation {
    condition     = var.images.url_ttl_seconds >= 60 && var.images.url_ttl_seconds <= 604800 && can(regex("/$", var.images.prefix))
    error_message = "images.url_ttl_seconds must be 60-604800 (the SigV4 presign limit) and images.prefix must end with \"/\"."
  }
}

variable "cors_origins" {
  description = "Browser origins allowed to call the API, e.g. the website URL (scheme://host[:port], no path). The first one answers pre-flight requests from unknown origins."
  type        = list(string)

  validation {
    condition     = length(var.cors_origins) > 0 && alltrue([for o in var.cors_origins : can(regex("^https?://[^/*]+$", o))])
    error_message = "cors_origins must list at least one origin like \"https://d111111abcdef8.cloudfront.net\" (scheme and host, no path, no \"*\")."
  }
}

variable "environment" {
  description = "Extra environment variables for the function (the LOOKALIKE_* wiring is set by the module)."
  type        = map(string)
  default     = {}
}

variable "stage_name" {
  description = "API Gateway stage name (part of the invoke URL)."
  type        = string
  default     = "v1"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_]{1,64}$", var.stage_name))
    error_message = "stage_name must be 1-64 letters, digits or underscores."
  }
}

variable "throttling" {
  description = "Stage-wide request throttling: steady rate (requests/s) and burst."
  type = object({
    rate_limit  = optional(number, 10)
    burst_limit = optional(number, 20)
  })
  default = {}

  validation {
    condition     = var.throttling.rate_limit > 0 && var.throttling.burst_limit >= 1
    error_message = "throttling.rate_limit must be positive and throttling.burst_limit at least 1."
  }
}

variable "api_key" {
  description = "Require an API key (x-api-key header) tied to a usage plan with a quota. Turn off only for an open demo behind other protection."
  type = object({
    enabled      = optional(bool, true)
    quota_limit  = optional(number, 10000)
    quota_period = optional(string, "DAY")
  })
  default = {}

  validation {
    condition     = contains(["DAY", "WEEK", "MONTH"], var.api_key.quota_period) && var.api_key.quota_limit >= 1
    error_message = "api_key.quota_period must be DAY, WEEK or MONTH and api_key.quota_limit at least 1."
  }
}

variable "manage_account_cloudwatch_role" {
  description = "Create the IAM role API Gateway uses to write logs and set it in the account's API Gateway settings (one setting per account and region; needed once before stage logging works). Leave false when another stack manages it."
  type        = bool
  default     = false
}

variable "tracing_enabled" {
  description = "Active X-Ray tracing for the function and the stage."
  type        = bool
  default     = true
}

variable "kms_key_arn" {
  description = "KMS key of the images bucket and for the log groups and function environment; null when none is customer managed."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the function's and the API's CloudWatch log groups, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
