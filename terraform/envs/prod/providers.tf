provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "lookalike"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
