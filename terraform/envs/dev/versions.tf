terraform {
  # use_lockfile (S3-native state locking) is generally available from Terraform 1.11.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # State in S3 with S3-native locking (a <key>.tflock object next to the state). The bucket
  # and region are per account: `make plan/deploy ENV=dev` passes backend.hcl (copy
  # backend.hcl.example). On Terraform < 1.11 drop use_lockfile and set dynamodb_table instead.
  backend "s3" {
    key          = "lookalike/dev/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}
