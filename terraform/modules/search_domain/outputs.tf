output "endpoint" {
  description = "Host name of the domain's HTTPS endpoint (or existing_endpoint when create = false)."
  value       = local.endpoint
}

output "url" {
  description = "Base URL of the domain, https://<endpoint> (the value of LOOKALIKE_OPENSEARCH_URL)."
  value       = local.endpoint == null ? null : "https://${local.endpoint}"
}

output "domain_arn" {
  description = "ARN of the domain (or existing_domain_arn), for scoping es:ESHttp* grants; null when unknown."
  value       = local.arn
}

output "domain_name" {
  description = "Name of the domain when created here, else null."
  value       = one(aws_opensearch_domain.this[*].domain_name)
}

output "log_group_arns" {
  description = "Map of OpenSearch log type to CloudWatch log group ARN."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.arn }
}
