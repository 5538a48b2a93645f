variable "create" {
  description = "Create the OpenSearch domain. Set false to use an existing cluster (or an emulator) given by existing_endpoint instead."
  type        = bool
  default     = true
}

variable "existing_endpoint" {
  description = "Host name (no scheme) of an existing OpenSearch endpoint, used when create = false."
  type        = string
  default     = null

  validation {
    condition     = var.create || (var.existing_endpoint != null && !can(regex("^https?://", coalesce(var.existing_endpoint, "x"))))
    error_message = "With create = false set existing_endpoint to the cluster's host name without scheme, e.g. \"search-lookalike-abc.eu-west-1.es.amazonaws.com\" or \"127.0.0.1:9200\"."
  }
}

variable "existing_domain_arn" {
  description = "ARN of the existing domain when create = false (lets the callers scope IAM grants); null when it is not an AWS domain."
  type        = string
  default     = null
}

variable "domain_name" {
  description = "Name of the OpenSearch domain."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,27}$", var.domain_name))
    error_message = "domain_name must be 3-28 characters, start with a lowercase letter and contain only lowercase letters, digits and hyphens (an OpenSearch Service rule)."
  }
}

variable "engine_version" {
  description = "OpenSearch engine version, OpenSearch_2.9 or newer (the k-NN plugin is built into every OpenSearch_* version; filtered faiss search needs 2.9)."
  type        = string
  default     = "OpenSearch_2.17"

  validation {
    condition     = can(regex("^OpenSearch_[0-9]+\\.[0-9]+$", var.engine_version))
    error_message = "engine_version must look like \"OpenSearch_2.17\" (Elasticsearch_* versions lack the k-NN plugin this stack relies on)."
  }

  # lookalike searches with the k-NN "efficient filter" (knn.<field>.filter) on a faiss HNSW
  # index by default, which OpenSearch supports from 2.9 on; it needs no method_parameters (2.16+).
  validation {
    condition = try(
      tonumber(regex("^OpenSearch_([0-9]+)\\.", var.engine_version)[0]) * 1000 + tonumber(regex("\\.([0-9]+)$", var.engine_version)[0]) >= 2009,
      false,
    )
    error_message = "engine_version must be OpenSearch_2.9 or newer, e.g. \"OpenSearch_2.17\": the search filters inside the faiss k-NN search (efficient filtering), which older versions lack. With LOOKALIKE_OPENSEARCH_ENGINE=lucene use OpenSearch_2.13 or newer (inner product on lucene)."
  }
}

variable "cluster" {
  description = "Data and (optional) dedicated master nodes. instance_count > 1 with zone_awareness spreads the nodes over availability zones."
  type = object({
    instance_type            = optional(string, "t3.small.search")
    instance_count           = optional(number, 1)
    zone_awareness_enabled   = optional(bool, false)
    availability_zone_count  = optional(number, 2)
    dedicated_master_enabled = optional(bool, false)
    dedicated_master_type    = optional(string, "m6g.large.search")
    dedicated_master_count   = optional(number, 3)
  })
  default = {}

  validation {
    condition     = can(regex("\\.search$", var.cluster.instance_type)) && var.cluster.instance_count >= 1
    error_message = "cluster.instance_type must be an OpenSearch Service type ending in \".search\" (e.g. \"r6g.large.search\") and instance_count at least 1."
  }

  validation {
    condition     = !var.cluster.zone_awareness_enabled || (var.cluster.instance_count % var.cluster.availability_zone_count == 0 && contains([2, 3], var.cluster.availability_zone_count))
    error_message = "With zone_awareness_enabled, availability_zone_count must be 2 or 3 and instance_count a multiple of it."
  }

  validation {
    condition     = !var.cluster.dedicated_master_enabled || contains([3, 5], var.cluster.dedicated_master_count)
    error_message = "dedicated_master_count must be 3 or 5 (an odd quorum) when dedicated masters are enabled."
  }
}

variable "ebs" {
  description = "EBS storage per data node."
  type = object({
    volume_size = optional(number, 10)
    volume_type = optional(string, "gp3")
    iops        = optional(number)
    throughput  = optional(number)
  })
  default = {}

  validation {
    condition     = var.ebs.volume_size >= 10 && contains(["gp2", "gp3", "io1"], var.ebs.volume_type)
    error_message = "ebs.volume_size must be at least 10 (GiB) and ebs.volume_type one of gp2, gp3, io1."
  }
}

variable "reader_role_arns" {
  description = "IAM role ARNs allowed to search the domain (es:ESHttpGet, es:ESHttpHead, es:ESHttpPost), e.g. the search Lambda's role."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.reader_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "reader_role_arns must hold IAM role ARNs (arn:aws:iam::<account>:role/<name>); wildcards and \"*\" are not accepted."
  }
}

variable "writer_role_arns" {
  description = "IAM role ARNs allowed to create indices and write documents (all es:ESHttp* methods), e.g. the role `lookalike cloud-index` runs as."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.writer_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "writer_role_arns must hold IAM role ARNs (arn:aws:iam::<account>:role/<name>); wildcards and \"*\" are not accepted."
  }
}

variable "vpc" {
  description = "Place the domain in a VPC: its subnets (one per availability zone used) and security groups. Null keeps a public endpoint guarded by the IAM access policy and SigV4."
  type = object({
    subnet_ids         = list(string)
    security_group_ids = optional(list(string), [])
  })
  default = null

  validation {
    condition     = var.vpc == null || length(try(var.vpc.subnet_ids, [])) >= 1
    error_message = "vpc.subnet_ids must name at least one subnet."
  }
}

variable "kms_key_arn" {
  description = "KMS key for encryption at rest and for the log groups; null uses the AWS managed key for the domain and unencrypted-by-CMK log groups."
  type        = string
  default     = null
}

variable "log_types" {
  description = "OpenSearch logs published to CloudWatch. AUDIT_LOGS additionally needs fine-grained access control."
  type        = set(string)
  default     = ["INDEX_SLOW_LOGS", "SEARCH_SLOW_LOGS", "ES_APPLICATION_LOGS"]

  validation {
    condition     = alltrue([for t in var.log_types : contains(["INDEX_SLOW_LOGS", "SEARCH_SLOW_LOGS", "ES_APPLICATION_LOGS", "AUDIT_LOGS"], t)])
    error_message = "log_types may contain INDEX_SLOW_LOGS, SEARCH_SLOW_LOGS, ES_APPLICATION_LOGS and AUDIT_LOGS only."
  }
}

variable "log_retention_days" {
  description = "Retention of the domain's CloudWatch log groups, in days."
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
