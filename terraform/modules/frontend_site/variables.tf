variable "bucket_name" {
  description = "Name of the S3 bucket holding the web page."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "hosting" {
  description = "How the page is served: \"cloudfront\" (private bucket, CloudFront with origin access control, HTTPS) or \"s3-website\" (S3 static website endpoint over plain HTTP; makes THIS bucket publicly readable)."
  type        = string
  default     = "cloudfront"

  validation {
    condition     = contains(["cloudfront", "s3-website"], var.hosting)
    error_message = "hosting must be \"cloudfront\" or \"s3-website\"."
  }
}

variable "web_dir" {
  description = "Local folder with the static page (index.html, app.js, style.css, ...). Every file is uploaded except config.js, which the module generates."
  type        = string
}

variable "api_url" {
  description = "Base URL of the search API written into config.js as apiBase (the page POSTs to <apiBase>/search)."
  type        = string

  validation {
    condition     = can(regex("^https?://[^ ]+[^/]$", var.api_url))
    error_message = "api_url must be an http(s) URL without a trailing slash, e.g. the search_api module's api_url output."
  }
}

variable "expose_api_key" {
  description = "Write the API key into the public config.js. Anyone who opens the page can then read and reuse the key, so the usage plan quota and throttling are the only limits: choose it only for a public demo."
  type        = bool
  default     = false
}

variable "api_key" {
  description = "API key value written into config.js when expose_api_key is true."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = !var.expose_api_key || var.api_key != null
    error_message = "expose_api_key is true but api_key is null: pass the search_api module's api_key output, or set expose_api_key = false."
  }
}

variable "cloudfront" {
  description = "CloudFront settings (hosting = \"cloudfront\"): price class and an optional WAF web ACL ARN."
  type = object({
    price_class = optional(string, "PriceClass_100")
    web_acl_arn = optional(string)
  })
  default = {}

  validation {
    condition     = contains(["PriceClass_All", "PriceClass_200", "PriceClass_100"], var.cloudfront.price_class)
    error_message = "cloudfront.price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "content_types" {
  description = "Extra file extension → Content-Type mappings (the module knows html, js, css, json, svg, png, jpg, ico, txt, webmanifest, woff2)."
  type        = map(string)
  default     = {}
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with its objects (the page is generated from web/ anyway)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource of this module."
  type        = map(string)
  default     = {}
}
