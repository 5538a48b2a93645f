variable "create" {
  description = "Create the SageMaker model, endpoint configuration and endpoint (with their role and log group). Set false to use an existing endpoint named by existing_endpoint_name instead, e.g. on an emulator without SageMaker."
  type        = bool
  default     = true
  nullable    = false
}

variable "existing_endpoint_name" {
  description = "Name of an existing SageMaker endpoint in the provider's account and region, used when create = false (its ARN is derived for the callers' grants)."
  type        = string
  default     = null

  validation {
    condition     = var.create || can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", var.existing_endpoint_name))
    error_message = "With create = false set existing_endpoint_name to the endpoint's name (1-63 letters, digits and hyphens), e.g. \"lookalike-prod\"."
  }
}

variable "name" {
  description = "Name of the SageMaker endpoint; the model, endpoint configuration, role and log group are named after it."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,49}$", var.name))
    error_message = "name must be 1-50 letters, digits and hyphens, starting and ending with a letter or digit (a hash suffix is appended for the model and endpoint configuration, whose names are limited to 63)."
  }
}

variable "model_data_url" {
  description = "s3:// URL of the model archive (PyTorch inference layout: model files at the root, code/inference.py)."
  type        = string

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]+[a-z0-9]/.+\\.tar\\.gz$", var.model_data_url))
    error_message = "model_data_url must be an s3://<bucket>/<key>.tar.gz URL, e.g. the artifacts module's model_archive_url output."
  }
}

variable "model_data_object_arn" {
  description = "ARN of the model archive object; the execution role may read this object only."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[^*]+$", var.model_data_object_arn))
    error_message = "model_data_object_arn must be the S3 object ARN (arn:aws:s3:::<bucket>/<key>) without wildcards."
  }
}

variable "image" {
  description = "Inference container. By default the AWS Deep Learning Container <repository>:<tag> of the provider's region; image_uri overrides it with any ECR image."
  type = object({
    repository = optional(string, "pytorch-inference")
    tag        = optional(string, "2.3.0-cpu-py311")
    image_uri  = optional(string)
  })
  default = {}

  validation {
    condition     = var.image.image_uri == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[^:]+:.+$", coalesce(var.image.image_uri, "x")))
    error_message = "image.image_uri must be an ECR image URI, <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>."
  }
}

variable "compute" {
  description = "How the endpoint runs: type = \"serverless\" (pay per request; memory_size_in_mb, max_concurrency, provisioned_concurrency) or \"instance\" (instance_type x instance_count, always on)."
  type = object({
    type                    = optional(string, "serverless")
    memory_size_in_mb       = optional(number, 2048) # the real container holds 1.0-1.3 GB, peaks ~1.5 GB
    max_concurrency         = optional(number, 5)
    provisioned_concurrency = optional(number)
    instance_type           = optional(string, "ml.c6i.large")
    instance_count          = optional(number, 1)
  })
  default = {}

  validation {
    condition     = contains(["serverless", "instance"], var.compute.type)
    error_message = "compute.type must be \"serverless\" or \"instance\"."
  }

  validation {
    condition     = contains([1024, 2048, 3072, 4096, 5120, 6144], var.compute.memory_size_in_mb) && var.compute.max_concurrency >= 1 && var.compute.max_concurrency <= 200
    error_message = "Serverless endpoints take memory_size_in_mb in 1024-6144 (steps of 1024) and max_concurrency in 1-200."
  }

  validation {
    condition     = can(regex("^ml\\.", var.compute.instance_type)) && var.compute.instance_count >= 1
    error_message = "compute.instance_type must be a SageMaker instance type such as \"ml.c6i.large\", and instance_count at least 1."
  }
}

variable "environment" {
  description = "Extra environment variables for the inference container (the SageMaker toolkit's SAGEMAKER_* variables are set by the module)."
  type        = map(string)
  default     = {}
}

variable "enable_network_isolation" {
  description = "Run the container without network access (the model and code come from the archive). Null: on for instance endpoints, off for serverless ones, which do not support it."
  type        = bool
  default     = null

  validation {
    condition     = var.enable_network_isolation != true || var.compute.type == "instance"
    error_message = "Serverless endpoints do not support network isolation: leave enable_network_isolation null or false, or use compute.type = \"instance\"."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the model archive and the endpoint's log group (and instance storage for instance endpoints); null when neither uses a customer managed key."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the endpoint's CloudWatch log group, in days."
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
