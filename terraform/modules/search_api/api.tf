# REST API: POST /search → Lambda (proxy integration), OPTIONS /search answers CORS pre-flight.

locals {
  cors_allow_headers = "'Content-Type,X-Api-Key,Authorization,X-Amz-Date,X-Amz-Security-Token'"
  # Pre-flight answers with the caller's origin when it is allowed, else with the first one.
  cors_preflight_template = <<-VTL
    #set($origin = $input.params("origin"))
    #if($origin == "")#set($origin = $input.params("Origin"))#end
    #if(${join(" || ", [for o in var.cors_origins : "$origin == \"${o}\""])})
    #set($context.responseOverride.header.Access-Control-Allow-Origin = $origin)
    #end
  VTL
}

resource "aws_api_gateway_rest_api" "this" {
  name        = var.name
  description = "lookalike image search API"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "search" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "search"
}

resource "aws_api_gateway_request_validator" "body" {
  name                  = "body"
  rest_api_id           = aws_api_gateway_rest_api.this.id
  validate_request_body = true
}

resource "aws_api_gateway_model" "search_request" {
  rest_api_id  = aws_api_gateway_rest_api.this.id
  name         = "SearchRequest"
  description  = "A query image (base64) with an optional result count and metadata filter."
  content_type = "application/json"
  schema = jsonencode({
    "$schema"  = "http://json-schema.org/draft-04/schema#"
    type       = "object"
    required   = ["image"]
    properties = { image = { type = "string", minLength = 1 }, k = { type = "integer", minimum = 1 }, filter = { type = "object" } }
  })
}

resource "aws_api_gateway_method" "search_post" {
  #checkov:skip=CKV2_AWS_70:Clients are anonymous browsers of the demo page; access is limited by the API key + usage plan quota (api_key_required) and stage throttling.
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.search.id
  http_method          = "POST"
  authorization        = "NONE"
  api_key_required     = var.api_key.enabled
  request_validator_id = aws_api_gateway_request_validator.body.id
  request_models       = { "application/json" = aws_api_gateway_model.search_request.name }
}

resource "aws_api_gateway_integration" "search_post" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.search.id
  http_method             = aws_api_gateway_method.search_post.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.this.invoke_arn
  timeout_milliseconds    = var.timeout * 1000
}

resource "aws_api_gateway_method" "search_options" {
  #checkov:skip=CKV_AWS_59:CORS pre-flight requests carry no credentials by definition; the MOCK integration returns headers only.
  #checkov:skip=CKV2_AWS_70:CORS pre-flight requests carry no credentials by definition; the MOCK integration returns headers only.
  #checkov:skip=CKV2_AWS_53:A CORS pre-flight request has no body to validate.
  rest_api_id   = aws_api_gateway_rest_api.this.id
  resource_id   = aws_api_gateway_resource.search.id
  http_method   = "OPTIONS"
  authorization = "NONE"
}

resource "aws_api_gateway_integration" "search_options" {
  rest_api_id       = aws_api_gateway_rest_api.this.id
  resource_id       = aws_api_gateway_resource.search.id
  http_method       = aws_api_gateway_method.search_options.http_method
  type              = "MOCK"
  request_templates = { "application/json" = jsonencode({ statusCode = 200 }) }
}

resource "aws_api_gateway_method_response" "search_options" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  resource_id = aws_api_gateway_resource.search.id
  http_method = aws_api_gateway_method.search_options.http_method
  status_code = "200"
  response_parameters = {
    "method.response.header.Access-Control-Allow-Origin"  = true
    "method.response.header.Access-Control-Allow-Methods" = true
    "method.response.header.Access-Control-Allow-Headers" = true
    "method.response.header.Access-Control-Max-Age"       = true
    "method.response.header.Vary"                         = true
  }
}

resource "aws_api_gateway_integration_response" "search_options" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  resource_id = aws_api_gateway_resource.search.id
  http_method = aws_api_gateway_method.search_options.http_method
  status_code = aws_api_gateway_method_response.search_options.status_code
  response_parameters = {
    "method.response.header.Access-Control-Allow-Origin"  = "'${var.cors_origins[0]}'"
    "method.response.header.Access-Control-Allow-Methods" = "'OPTIONS,POST'"
    "method.response.header.Access-Control-Allow-Headers" = local.cors_allow_headers
    "method.response.header.Access-Control-Max-Age"       = "'600'"
    "method.response.header.Vary"                         = "'Origin'"
  }
  response_templates = { "application/json" = local.cors_preflight_template }

  depends_on = [aws_api_gateway_integration.search_options]
}

# Errors raised by API Gateway itself (missing API key, throttling, bad body) also carry CORS
# headers, so the page can show them instead of an opaque network error.
resource "aws_api_gateway_gateway_response" "cors" {
  for_each = toset(["DEFAULT_4XX", "DEFAULT_5XX"])

  rest_api_id   = aws_api_gateway_rest_api.this.id
  response_type = each.key
  response_parameters = {
    "gatewayresponse.header.Access-Control-Allow-Origin"  = "'${var.cors_origins[0]}'"
    "gatewayresponse.header.Access-Control-Allow-Headers" = local.cors_allow_headers
    "gatewayresponse.header.Vary"                         = "'Origin'"
  }
  response_templates = {
    "application/json" = "{\"error\": {\"code\": \"gateway\", \"message\": $context.error.messageString}}"
  }
}

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id

  # A new deployment whenever anything that shapes the API changes: a resource was replaced
  # (its ID), an input it is built from changed, or this file did (every literal setting). Not
  # the resources themselves: their state also holds what the API reads back on refresh (empty
  # maps and lists where the configuration has null), so such a hash changed after every
  # refresh and each plan replaced the deployment (tests/terraform/test_localstack.py found it).
  triggers = {
    redeployment = sha1(jsonencode([
      filesha1("${path.module}/api.tf"),
      [
        aws_api_gateway_resource.search.id,
        aws_api_gateway_request_validator.body.id,
        aws_api_gateway_model.search_request.id,
        aws_api_gateway_method.search_post.id,
        aws_api_gateway_integration.search_post.id,
        aws_api_gateway_method.search_options.id,
        aws_api_gateway_integration.search_options.id,
        aws_api_gateway_method_response.search_options.id,
        aws_api_gateway_integration_response.search_options.id,
        [for r in aws_api_gateway_gateway_response.cors : r.id],
      ],
      [aws_lambda_function.this.invoke_arn, var.timeout, var.api_key.enabled, var.cors_origins],
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_120:Every request carries a different query image; a response cache would never hit.
  #checkov:skip=CKV2_AWS_29:A WAF web ACL costs a fixed monthly fee; the API is protected by API key, usage-plan quota and throttling. Attach one with aws_wafv2_web_acl_association when needed.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to HTTP backends; the only backend is a Lambda proxy integration.
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  xray_tracing_enabled = var.tracing_enabled

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      requestTime    = "$context.requestTime"
      httpMethod     = "$context.httpMethod"
      resourcePath   = "$context.resourcePath"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latencyMs      = "$context.responseLatency"
      integrationMs  = "$context.integration.latency"
      apiKeyId       = "$context.identity.apiKeyId"
      error          = "$context.error.message"
    })
  }

  tags = var.tags

  depends_on = [aws_api_gateway_account.this]
}

resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:Every request carries a different query image; a response cache would never hit.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = "ERROR"
    data_trace_enabled     = false
    throttling_rate_limit  = var.throttling.rate_limit
    throttling_burst_limit = var.throttling.burst_limit
    caching_enabled        = false
  }
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days input (365 days by default); short-lived environments such as dev choose less.
  name              = "/aws/apigateway/${var.name}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_api_gateway_usage_plan" "this" {
  count = var.api_key.enabled ? 1 : 0

  name = var.name

  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }

  quota_settings {
    limit  = var.api_key.quota_limit
    period = var.api_key.quota_period
  }

  throttle_settings {
    rate_limit  = var.throttling.rate_limit
    burst_limit = var.throttling.burst_limit
  }

  tags = var.tags
}

resource "aws_api_gateway_api_key" "this" {
  count = var.api_key.enabled ? 1 : 0

  name    = var.name
  enabled = true
  tags    = var.tags
}

resource "aws_api_gateway_usage_plan_key" "this" {
  count = var.api_key.enabled ? 1 : 0

  key_id        = aws_api_gateway_api_key.this[0].id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.this[0].id
}
