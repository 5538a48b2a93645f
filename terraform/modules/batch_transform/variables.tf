variable "create" {
  description = "Create the transform model and its execution role. False creates nothing (e.g. on an emulator without SageMaker); the outputs are then null."
  type        = bool
  default     = true
  nullable    = false
}

variable "name" {
  description = "Name prefix of the model (\"<name>-<hash>\") and the role (\"<name>-transform\"), e.g. \"lookalike-prod-batch\"."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,49}$", var.name))
    error_message = "name must be 1-50 letters, digits and hyphens, starting and ending with a letter or digit (a hash suffix is appended for the model, whose name is limited to 63)."
  }
}

variable "account_id" {
  description = "AWS account ID the jobs run in (for the ARN of the /aws/sagemaker/TransformJobs log group)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be the 12-digit AWS account ID, e.g. \"123456789012\"."
  }
}

variable "image_uri" {
  description = "Inference container image: the endpoint's (inference_endpoint output image_uri), so both run the same stack."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[^:]+:.+$", var.image_uri))
    error_message = "image_uri must be an ECR image URI, <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>, e.g. the inference_endpoint module's image_uri output."
  }
}

variable "model_data_url" {
  description = "s3:// URL of the model archive the endpoint serves (same model.tar.gz, same code/inference.py)."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]+[a-z0-9]/.+\\.tar\\.gz$", var.model_data_url))
    error_message = "model_data_url must be an s3://<bucket>/<key>.tar.gz URL, e.g. the artifacts module's model_archive_url output."
  }
}

variable "model_data_object_arn" {
  description = "ARN of the model archive object; the role may read this object only of the archive's bucket, besides the manifests."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[^*]+$", var.model_data_object_arn))
    error_message = "model_data_object_arn must be the S3 object ARN (arn:aws:s3:::<bucket>/<key>) without wildcards."
  }
}

variable "environment" {
  description = "Environment of the container: the endpoint's (inference_endpoint output container_environment)."
  type        = map(string)
  default     = {}
}

variable "input_prefixes" {
  description = "s3://BUCKET/PREFIX/ locations transform jobs may read images from (GetObject on PREFIX*, ListBucket within it)."
  type        = list(string)

  validation {
    condition     = length(var.input_prefixes) > 0 && alltrue([for p in var.input_prefixes : can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([^*?]+/)?$", p))])
    error_message = "input_prefixes must hold at least one s3://BUCKET/PREFIX/ URL ending with \"/\" (or s3://BUCKET/ for a whole bucket), without wildcards, e.g. \"s3://my-photos/catalogue/\"."
  }
}

variable "artifacts" {
  description = "Where the jobs' manifests (<prefix>manifests/, read) and outputs (<prefix>output/, written) live: the artifacts bucket's name and ARN, and the prefix."
  type = object({
    bucket_name = string
    bucket_arn  = string
    prefix      = optional(string, "batch/")
  })

  validation {
    condition     = can(regex("^([A-Za-z0-9!_.*'()-]+/)+$", var.artifacts.prefix))
    error_message = "artifacts.prefix must be one or more path segments each ending with \"/\", e.g. \"batch/\"."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the buckets (decrypt the archive, manifests and images, encrypt outputs) and of the jobs' storage volumes; null when none is used."
  type        = string
  default     = null
}

variable "job" {
  description = "Defaults of each transform job, read by `lookalike cloud-batch` from the outputs (its flags override them): instance_type, instance_count, max_concurrent_transforms (requests in flight per instance), max_payload_mb (the largest image)."
  type = object({
    instance_type             = optional(string, "ml.c5.xlarge")
    instance_count            = optional(number, 1)
    max_concurrent_transforms = optional(number, 4)
    max_payload_mb            = optional(number, 6)
  })
  default  = {}
  nullable = false

  validation {
    condition     = can(regex("^ml\\.", var.job.instance_type)) && var.job.instance_count >= 1 && floor(var.job.instance_count) == var.job.instance_count
    error_message = "job.instance_type must be a SageMaker instance type such as \"ml.c5.xlarge\", and job.instance_count a whole number >= 1."
  }

  validation {
    condition     = var.job.max_payload_mb >= 1 && var.job.max_payload_mb <= 100 && var.job.max_concurrent_transforms >= 0 && var.job.max_concurrent_transforms * var.job.max_payload_mb <= 100
    error_message = "job.max_payload_mb must be in 1..100 and job.max_concurrent_transforms x job.max_payload_mb at most 100 (SageMaker's limits), e.g. 4 x 6."
  }
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
