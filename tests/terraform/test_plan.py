"""The production plan, made offline (fake credentials, no AWS call) and read as JSON: every
component present, configured as intended and wired to the others."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest

from .helpers import FAKE_ACCOUNT, STACK, as_list, copy_tree, local_aws_root, policy_statements, record_timing

pytestmark = pytest.mark.slow

# Every endpoint points at a closed local port so that an accidental API call fails at once
# instead of reaching AWS.
CLOSED_PORT = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def prod_dir(terraform, tmp_path_factory, artifacts_dir, web_dir):
    """envs/prod as written, with a local backend, fake credentials and the stand-in build."""
    tree = copy_tree(tmp_path_factory.mktemp("plan") / "terraform")
    env_dir = local_aws_root(tree / "envs" / "prod", CLOSED_PORT, access_key="AKIAOFFLINEPLAN00000", max_retries=1,
                             module_inputs={"lookalike": {"account_id": FAKE_ACCOUNT, "artifacts_dir": str(artifacts_dir),
                                                          "web_dir": str(web_dir)}})
    terraform.run(env_dir, "init", "-input=false", "-no-color")
    return env_dir


@pytest.fixture(scope="module")
def plan(terraform, prod_dir) -> dict:
    start = time.monotonic()
    terraform.run(prod_dir, "plan", "-input=false", "-no-color", "-out=tfplan")
    record_timing("plan_prod_offline_s", time.monotonic() - start)
    return terraform.json(prod_dir, "show", "-json", "tfplan")


def planned(plan: dict) -> dict[str, dict]:
    """``{address in the stack: planned values}`` of every managed resource (unknown values are absent)."""
    prefix = STACK + "."
    managed = {r["address"]: r["change"]["after"] for r in plan["resource_changes"] if r["mode"] == "managed"}
    assert all(a.startswith(prefix) for a in managed), "the environment creates everything through the stack"
    return {a.removeprefix(prefix): v for a, v in managed.items()}


def stack_calls(plan: dict) -> dict[str, dict]:
    """The module calls inside the stack module, as configured."""
    return plan["configuration"]["root_module"]["module_calls"]["lookalike"]["module"]["module_calls"]


def module_config(plan: dict, module: str) -> dict:
    return stack_calls(plan)[module]


def resource_config(plan: dict, module: str, address: str) -> dict:
    return next(r for r in module_config(plan, module)["module"]["resources"] if r["address"] == address)


def refs(expression: dict) -> set[str]:
    return set(expression.get("references", []))


def test_every_component_is_planned(plan):
    types = {r["type"] for r in plan["resource_changes"] if r["mode"] == "managed"}
    assert {
        "aws_s3_bucket", "aws_s3_object", "aws_s3_bucket_policy", "aws_kms_key",
        "aws_opensearch_domain", "aws_opensearch_domain_policy", "aws_cloudwatch_log_resource_policy",
        "aws_sagemaker_model", "aws_sagemaker_endpoint_configuration", "aws_sagemaker_endpoint",
        "aws_lambda_function", "aws_lambda_permission", "aws_api_gateway_rest_api", "aws_api_gateway_method",
        "aws_api_gateway_integration", "aws_api_gateway_deployment", "aws_api_gateway_stage",
        "aws_api_gateway_method_settings", "aws_api_gateway_api_key", "aws_api_gateway_usage_plan",
        "aws_api_gateway_usage_plan_key", "aws_api_gateway_account", "aws_cloudfront_distribution",
        "aws_cloudfront_origin_access_control",
    } <= types
    assert all(r["change"]["actions"] == ["create"] for r in plan["resource_changes"] if r["mode"] == "managed")
    assert {"api_url", "website_url", "opensearch_endpoint", "sagemaker_endpoint_name", "images_bucket"} <= set(plan["output_changes"])


def test_buckets_are_private_versioned_and_encrypted(plan):
    values = planned(plan)
    buckets = {v["bucket"] for a, v in values.items() if a.endswith("aws_s3_bucket.this") or '.aws_s3_bucket.this["' in a}
    assert buckets == {"lookalike-prod-artifacts", "lookalike-prod-images", "lookalike-prod-web"}
    blocks = [v for a, v in values.items() if ".aws_s3_bucket_public_access_block." in a]
    assert len(blocks) == 3
    for block in blocks:  # prod serves the page through CloudFront: nothing is public
        assert block["block_public_acls"] and block["block_public_policy"]
        assert block["ignore_public_acls"] and block["restrict_public_buckets"]
    assert not [a for a in values if "aws_s3_bucket_website_configuration" in a]
    assert all(v.get("acl") in (None, "private") for a, v in values.items() if ".aws_s3_bucket.this" in a)
    versioning = [v for a, v in values.items() if ".aws_s3_bucket_versioning." in a]
    assert len(versioning) == 3 and all(v["versioning_configuration"][0]["status"] == "Enabled" for v in versioning)
    sse = {a: v["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"]
           for a, v in values.items() if "server_side_encryption_configuration" in a}
    assert sorted(sse.values()) == ["AES256", "aws:kms", "aws:kms"]  # page assets: SSE-S3 (read via CloudFront)
    kms = next(v for a, v in values.items() if a.endswith("aws_kms_key.this[0]"))
    assert kms["enable_key_rotation"]


def test_uploads_are_content_addressed(plan, artifacts_dir):
    values = planned(plan)
    model = values["module.artifacts.aws_s3_object.model[0]"]
    lam = values["module.artifacts.aws_s3_object.lambda[0]"]
    model_sha = hashlib.sha256((artifacts_dir / "model.tar.gz").read_bytes()).hexdigest()
    lambda_bytes = (artifacts_dir / "lambda.zip").read_bytes()
    assert model["key"] == f"models/{model_sha[:16]}/model.tar.gz" and model["source_hash"] == model_sha
    assert lam["key"].startswith("lambda/") and lam["key"].endswith("/lambda.zip")
    fn = values["module.search_api.aws_lambda_function.this"]
    assert fn["s3_key"] == lam["key"]
    assert fn["source_code_hash"] == base64.b64encode(hashlib.sha256(lambda_bytes).digest()).decode()


def test_search_domain(plan):
    domain = planned(plan)["module.search_domain.aws_opensearch_domain.this[0]"]
    assert domain["engine_version"] == "OpenSearch_2.17" and domain["domain_name"] == "lookalike-prod"
    cluster = domain["cluster_config"][0]
    assert cluster["instance_type"] == "r6g.large.search" and cluster["instance_count"] == 2
    assert cluster["zone_awareness_enabled"]
    assert domain["ebs_options"][0]["ebs_enabled"] and domain["ebs_options"][0]["volume_size"] == 20
    assert domain["encrypt_at_rest"][0]["enabled"] and domain["node_to_node_encryption"][0]["enabled"]
    endpoint = domain["domain_endpoint_options"][0]
    assert endpoint["enforce_https"] and endpoint["tls_security_policy"] == "Policy-Min-TLS-1-2-2019-07"
    logs = {o["log_type"] for o in domain["log_publishing_options"]}
    assert logs == {"INDEX_SLOW_LOGS", "SEARCH_SLOW_LOGS", "ES_APPLICATION_LOGS"}
    assert all(o["enabled"] for o in domain["log_publishing_options"])


def test_search_domain_access_is_role_scoped(plan):
    """The domain policy grants es:ESHttp* methods to the Lambda role and the indexer roles only."""
    call = module_config(plan, "search_domain")["expressions"]
    assert "module.search_api.role_arn" in refs(call["reader_role_arns"])
    assert "var.opensearch.indexer_role_arns" in refs(call["writer_role_arns"])
    for name, var in (("readers", "var.reader_role_arns"), ("writers", "var.writer_role_arns")):
        doc = resource_config(plan, "search_domain", f"data.aws_iam_policy_document.{name}")
        for statement in doc["expressions"]["statement"]:
            actions = statement["actions"]["constant_value"]
            assert actions and all(a.startswith("es:ESHttp") and "*" not in a for a in actions)
            principal = statement["principals"][0]
            assert principal["type"]["constant_value"] == "AWS"
            assert refs(principal["identifiers"]) == {var}


def test_bad_settings_are_rejected_with_clear_messages(terraform, prod_dir, tmp_path):
    settings = tmp_path / "bad.tfvars.json"
    settings.write_text(json.dumps({
        "opensearch": {"indexer_role_arns": ["*"], "engine_version": "OpenSearch_2.7"},
        "sagemaker": {"create": False},
        "api": {"api_key_enabled": False, "opensearch_max_retries": -1},
        "website": {"expose_api_key": True},
    }))
    proc = terraform.run(prod_dir, "plan", "-input=false", "-no-color", f"-var-file={settings}", check=False)
    assert proc.returncode != 0
    message = " ".join(proc.stderr.replace("│", " ").split())
    assert 'writer_role_arns must hold IAM role ARNs' in message and 'wildcards and "*" are not accepted' in message
    assert "opensearch_max_retries must be a whole number >= 0" in message
    assert "engine_version must be OpenSearch_2.9 or newer" in message and "OpenSearch_2.13 or newer" in message
    assert "With create = false set existing_endpoint_name" in message
    assert "website.expose_api_key = true needs api.api_key_enabled = true" in message


def test_inference_endpoint(plan):
    values = planned(plan)
    model = values["module.inference_endpoint.aws_sagemaker_model.this[0]"]
    container = model["primary_container"][0]
    # Looked up by the provider from its table of AWS Deep Learning Container registries.
    assert container["image"] == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.3.0-cpu-py311"
    assert container["environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert model["enable_network_isolation"] is False  # serverless endpoints do not support it
    config = values["module.inference_endpoint.aws_sagemaker_endpoint_configuration.this[0]"]
    variant = config["production_variants"][0]
    assert variant["serverless_config"][0]["memory_size_in_mb"] == 3072
    assert variant["serverless_config"][0]["max_concurrency"] == 10
    assert values["module.inference_endpoint.aws_sagemaker_endpoint.this[0]"]["name"] == "lookalike-prod"
    call = module_config(plan, "inference_endpoint")["expressions"]
    assert "module.artifacts.model_archive_url" in refs(call["model_data_url"])
    assert "module.artifacts.model_archive_object_arn" in refs(call["model_data_object_arn"])
    role_doc = resource_config(plan, "inference_endpoint", "data.aws_iam_policy_document.this")
    read = next(s for s in role_doc["expressions"]["statement"] if s.get("sid", {}).get("constant_value") == "ReadModelArchive")
    assert read["actions"]["constant_value"] == ["s3:GetObject"]
    assert refs(read["resources"]) == {"var.model_data_object_arn"}


def test_search_api_is_wired_to_endpoint_domain_and_page(plan):
    values = planned(plan)
    fn = values["module.search_api.aws_lambda_function.this"]
    assert fn["handler"] == "handler.handler" and fn["runtime"] == "python3.12"
    assert fn["tracing_config"][0]["mode"] == "Active"
    call = module_config(plan, "search_api")["expressions"]
    assert "module.inference_endpoint.endpoint_name" in refs(call["sagemaker_endpoint_name"])
    assert "module.inference_endpoint.endpoint_arn" in refs(call["sagemaker_endpoint_arn"])
    assert {"module.search_domain.url", "module.search_domain.domain_arn"} <= refs(call["opensearch"])
    assert "module.frontend_site.origin" in refs(call["cors_origins"])
    assert "module.artifacts.lambda_package" in refs(call["package"])
    assert "module.artifacts.images_bucket_name" in refs(call["images"])
    env = resource_config(plan, "search_api", "aws_lambda_function.this")["expressions"]["environment"][0]
    assert refs(env["variables"]) == {"local.environment"}
    # A search waits for OpenSearch retries: one, not the library's five (~15 s before a 503).
    assert "var.api.opensearch_max_retries" in refs(call["opensearch_max_retries"])
    # From the output: a planned output keeps the values already known, where the provider plans
    # the Lambda's environment as unknown as a whole.
    lambda_env = plan["output_changes"]["lambda_environment"]
    assert lambda_env["after"]["LOOKALIKE_OPENSEARCH_MAX_RETRIES"] == "1"
    assert lambda_env["after"]["LOOKALIKE_OPENSEARCH_AUTH"] == "sigv4"
    assert lambda_env["after"]["LOOKALIKE_SAGEMAKER_ENDPOINT"] == "lookalike-prod"
    assert {"LOOKALIKE_OPENSEARCH_URL", "LOOKALIKE_CORS_ORIGINS"} <= set(lambda_env["after_unknown"])  # known after apply
    # Bulk indexing is not waited on by anyone: cloud-index keeps the default retries.
    index_env = plan["output_changes"]["cloud_index_environment"]
    assert "LOOKALIKE_OPENSEARCH_MAX_RETRIES" not in {**index_env["after"], **(index_env["after_unknown"] or {})}
    integration = resource_config(plan, "search_api", "aws_api_gateway_integration.search_post")["expressions"]
    assert "aws_lambda_function.this.invoke_arn" in refs(integration["uri"])
    assert values["module.search_api.aws_api_gateway_integration.search_post"]["type"] == "AWS_PROXY"
    permission = values["module.search_api.aws_lambda_permission.api"]
    assert permission["principal"] == "apigateway.amazonaws.com" and permission["action"] == "lambda:InvokeFunction"
    assert "aws_api_gateway_rest_api.this.execution_arn" in refs(
        resource_config(plan, "search_api", "aws_lambda_permission.api")["expressions"]["source_arn"])
    page_call = module_config(plan, "frontend_site")["expressions"]
    assert "module.search_api.api_url" in refs(page_call["api_url"])


def test_api_methods_throttling_and_key(plan):
    values = planned(plan)
    post = values["module.search_api.aws_api_gateway_method.search_post"]
    assert post["http_method"] == "POST" and post["api_key_required"]
    options = values["module.search_api.aws_api_gateway_method.search_options"]
    assert options["http_method"] == "OPTIONS" and options["authorization"] == "NONE"
    assert values["module.search_api.aws_api_gateway_integration.search_options"]["type"] == "MOCK"
    assert values["module.search_api.aws_api_gateway_resource.search"]["path_part"] == "search"
    settings = values["module.search_api.aws_api_gateway_method_settings.all"]["settings"][0]
    assert settings["throttling_rate_limit"] == 20 and settings["throttling_burst_limit"] == 40
    stage = values["module.search_api.aws_api_gateway_stage.this"]
    assert stage["stage_name"] == "v1" and stage["xray_tracing_enabled"] and stage["access_log_settings"]
    plan_quota = values["module.search_api.aws_api_gateway_usage_plan.this[0]"]["quota_settings"][0]
    assert plan_quota == {"limit": 20000, "offset": 0, "period": "DAY"}


def test_page_served_by_cloudfront_with_origin_access_control(plan, web_dir):
    values = planned(plan)
    dist = values["module.frontend_site.aws_cloudfront_distribution.this[0]"]
    assert dist["default_root_object"] == "index.html"
    behaviour = dist["default_cache_behavior"][0]
    assert behaviour["viewer_protocol_policy"] == "redirect-to-https"
    assert values["module.frontend_site.aws_cloudfront_origin_access_control.this[0]"]["signing_behavior"] == "always"
    objects = {v["key"]: v for a, v in values.items() if a.startswith("module.frontend_site.aws_s3_object.")}
    assert objects["index.html"]["content_type"].startswith("text/html")
    assert objects["config.js"]["content_type"].startswith("text/javascript")
    expected = {p.relative_to(web_dir).as_posix() for p in web_dir.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert set(objects) == expected | {"config.js"}
    for key, obj in objects.items():
        if key.endswith(".css"):
            assert obj["content_type"].startswith("text/css")
        if key.endswith(".js"):
            assert obj["content_type"].startswith("text/javascript")


def test_no_static_policy_grants_to_anyone(plan):
    """In every policy document written in the code: '*' principals only in Deny statements
    (TLS-only) or in the explicitly chosen public website statement; no '*' or 'es:*' actions."""
    checked = 0
    for name, call in stack_calls(plan).items():
        for res in call["module"]["resources"]:
            if res["type"] != "aws_iam_policy_document":
                continue
            for statement in res.get("expressions", {}).get("statement", []):
                checked += 1
                actions = statement.get("actions", {}).get("constant_value", [])
                assert "*" not in actions and "es:*" not in actions, (name, res["address"])
                if "kms:*" in actions:
                    assert (name, res["address"]) == ("artifacts", "data.aws_iam_policy_document.kms")
                effect = statement.get("effect", {}).get("constant_value", "Allow")
                for principal in statement.get("principals", []):
                    ids = principal["identifiers"].get("constant_value", [])
                    if "*" in as_list(ids):
                        public_site = (name, res["address"]) == ("frontend_site", "data.aws_iam_policy_document.public_read")
                        assert effect == "Deny" or (public_site and actions == ["s3:GetObject"]), (name, res["address"])
    assert checked >= 15


def test_kms_key_policy(plan):
    kms = planned(plan)["module.artifacts.aws_kms_key.this[0]"]
    statements = policy_statements(kms["policy"])
    principals = [s["Principal"] for s in statements]
    assert {"AWS": f"arn:aws:iam::{FAKE_ACCOUNT}:root"} in principals
    assert {"Service": "logs.eu-west-1.amazonaws.com"} in principals
    assert "*" not in principals and {"AWS": "*"} not in principals


def test_missing_build_stops_the_plan(terraform, prod_dir, tmp_path):
    proc = terraform.run(prod_dir, "plan", "-input=false", "-no-color", "-var", f"artifacts_dir={tmp_path}", check=False)
    assert proc.returncode != 0
    message = " ".join(proc.stderr.replace("│", " ").split())
    assert f"No model archive at {tmp_path}/model.tar.gz: run `make build` first." in message
    assert f"No Lambda package at {tmp_path}/lambda.zip: run `make build` first." in message




def test_batch_transform_runs_the_endpoints_archive_under_a_role_of_its_own(plan):
    """The model transform jobs run has the endpoint's image, archive and environment; its role
    reads the archive, the manifests and the input prefixes and writes the output prefix (the
    policy's dynamic statements, ListBucket and KMS, are checked on moto in test_emulator.py)."""
    values = planned(plan)
    model = values["module.batch_transform.aws_sagemaker_model.this[0]"]
    served = values["module.inference_endpoint.aws_sagemaker_model.this[0]"]["primary_container"][0]
    container = model["primary_container"][0]
    assert container["image"] == served["image"] and container["environment"] == served["environment"]
    assert container["environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert model["enable_network_isolation"] is True  # the archive brings its wheels
    call = module_config(plan, "batch_transform")["expressions"]
    assert "module.artifacts.model_archive_url" in refs(call["model_data_url"])  # as the endpoint's model
    assert "module.artifacts.model_archive_url" in refs(module_config(plan, "inference_endpoint")["expressions"]
                                                        ["model_data_url"])
    assert "module.inference_endpoint.image_uri" in refs(call["image_uri"])
    assert "module.inference_endpoint.container_environment" in refs(call["environment"])
    assert {"module.artifacts.images_bucket_name", "module.artifacts.images_prefix",
            "var.batch.input_prefixes"} <= refs(call["input_prefixes"])
    assert {"module.artifacts.artifacts_bucket_name", "module.artifacts.artifacts_bucket_arn"} <= refs(call["artifacts"])
    assert "module.artifacts.kms_key_arn" in refs(call["kms_key_arn"])
    role = values["module.batch_transform.aws_iam_role.this[0]"]
    assert role["name"] == "lookalike-prod-batch-transform"
    assert [s["Principal"] for s in policy_statements(role["assume_role_policy"])] == [
        {"Service": "sagemaker.amazonaws.com"}]

    doc = resource_config(plan, "batch_transform", "data.aws_iam_policy_document.this")["expressions"]
    statements = {st["sid"]["constant_value"]: st for st in doc["statement"]}
    s3_grants = {sid: st["actions"]["constant_value"] for sid, st in statements.items()
                 if any(a.startswith("s3:") for a in st["actions"]["constant_value"])}
    assert s3_grants == {"ReadModelArchive": ["s3:GetObject"], "ReadJobManifests": ["s3:GetObject"],
                         "ReadInputImages": ["s3:GetObject"],
                         "WriteJobOutputs": ["s3:PutObject", "s3:AbortMultipartUpload"]}
    assert refs(statements["ReadModelArchive"]["resources"]) == {"var.model_data_object_arn"}
    assert refs(statements["ReadJobManifests"]["resources"]) == {"local.manifests_arn"}
    assert "local.inputs" in refs(statements["ReadInputImages"]["resources"])
    assert refs(statements["WriteJobOutputs"]["resources"]) == {"local.outputs_arn"}

    # What `make ingest` exports: the stack's settings for `lookalike cloud-batch`.
    ingest = plan["output_changes"]["batch_ingest_environment"]
    assert {k: ingest["after"][k] for k in ingest["after"] if k.startswith("LOOKALIKE_TRANSFORM_")} == {
        "LOOKALIKE_TRANSFORM_INSTANCE_TYPE": "ml.c5.xlarge", "LOOKALIKE_TRANSFORM_INSTANCE_COUNT": "2",
        "LOOKALIKE_TRANSFORM_MAX_CONCURRENT": "4", "LOOKALIKE_TRANSFORM_MAX_PAYLOAD_MB": "6"}
    assert {"LOOKALIKE_TRANSFORM_MODEL", "LOOKALIKE_TRANSFORM_PREFIX", "LOOKALIKE_TRANSFORM_INPUT_PREFIXES",
            "LOOKALIKE_TRANSFORM_KMS_KEY", "LOOKALIKE_OPENSEARCH_URL", "LOOKALIKE_IMAGES_BUCKET"} == set(
        ingest["after_unknown"])  # known after apply (bucket, key, domain, model names)
    assert (ingest["after"]["LOOKALIKE_OPENSEARCH_AUTH"], ingest["after"]["AWS_REGION"]) == ("sigv4", "eu-west-1")
    from lookalike.config import Settings

    settings = Settings.from_env({k: v for k, v in ingest["after"].items()})  # every value valid for the CLI
    assert (settings.transform_instance_count, settings.transform_max_concurrent) == (2, 4)



@pytest.mark.parametrize("batch, expected", [
    ({"input_prefixes": ["s3://photos/*"]}, ["batch.input_prefixes must be s3://BUCKET/PREFIX/ URLs"]),
    ({"instance_type": "c5.xlarge", "max_concurrent_transforms": 20},
     ['job.instance_type must be a SageMaker instance type such as "ml.c5.xlarge"',
      "job.max_concurrent_transforms x job.max_payload_mb at most 100"]),
])
def test_bad_batch_settings_are_rejected_with_clear_messages(terraform, prod_dir, tmp_path, batch, expected):
    settings = tmp_path / "bad-batch.tfvars.json"
    settings.write_text(json.dumps({"batch": batch}))
    proc = terraform.run(prod_dir, "plan", "-input=false", "-no-color", f"-var-file={settings}", check=False)
    assert proc.returncode != 0
    message = " ".join(proc.stderr.replace("│", " ").split())
    for text in expected:
        assert text in message
