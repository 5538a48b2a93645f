# The resources of this module gained `count` (var.create); states written before keep them
# under their unindexed addresses. These blocks move them instead of replacing the endpoint.

moved {
  from = aws_sagemaker_model.this
  to   = aws_sagemaker_model.this[0]
}

moved {
  from = aws_sagemaker_endpoint_configuration.this
  to   = aws_sagemaker_endpoint_configuration.this[0]
}

moved {
  from = aws_sagemaker_endpoint.this
  to   = aws_sagemaker_endpoint.this[0]
}

moved {
  from = aws_cloudwatch_log_group.this
  to   = aws_cloudwatch_log_group.this[0]
}

moved {
  from = aws_iam_role.this
  to   = aws_iam_role.this[0]
}

moved {
  from = aws_iam_role_policy.this
  to   = aws_iam_role_policy.this[0]
}
