variable "name_prefix" {
  description = "Prefix for every resource name (bucket names become \"<prefix>-artifacts\" and \"<prefix>-images\" unless bucket_names overrides them)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-42 characters of lowercase letters, digits and hyphens, starting and ending with a letter or digit (it becomes part of S3 bucket names), e.g. \"lookalike-prod\"."
  }
}

variable "bucket_names" {
  description = "Explicit S3 bucket names, when the derived \"<prefix>-artifacts\"/\"<prefix>-images\" are taken (bucket names are global)."
  type = object({
    artifacts = optional(string)
    images    = optional(string)
  })
  default = {}

  validation {
    condition = alltrue([
      for name in [var.bucket_names.artifacts, var.bucket_names.images] :
      name == null ? true : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", name))
    ])
    error_message = "Bucket names must be 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "account_id" {
  description = "AWS account ID the stack lives in; used for the KMS key policy (account root as key administrator, CloudWatch Logs in this account as key user)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be the 12-digit AWS account ID, e.g. \"123456789012\"."
  }
}

variable "kms_key_arn" {
  description = "ARN of an existing customer managed KMS key to encrypt the buckets and logs with. When null the module creates one (with rotation)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), or null to let the module create a key."
  }
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before a destroyed KMS key is deleted (7-30 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30 (an AWS limit)."
  }
}

variable "model_archive_path" {
  description = "Local path of the SageMaker model archive (dist/model.tar.gz from `make build`). Uploaded under a content-addressed key, so a new model replaces the SageMaker model. Null uploads nothing."
  type        = string
  default     = null
}

variable "lambda_zip_path" {
  description = "Local path of the Lambda deployment package (dist/lambda.zip from `make build`). Uploaded under a content-addressed key. Null uploads nothing."
  type        = string
  default     = null
}

variable "images_prefix" {
  description = "Key prefix under which the indexed images live in the images bucket (must end with \"/\")."
  type        = string
  default     = "images/"

  validation {
    condition     = can(regex("^([A-Za-z0-9!_.*'()-]+/)+$", var.images_prefix))
    error_message = "images_prefix must be one or more path segments each ending with \"/\", e.g. \"images/\"."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which superseded object versions (old models, packages, replaced images) are deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the buckets with all objects and versions in them. Keep false for production data."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
