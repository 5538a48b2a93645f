"""Apply envs/dev against moto on 127.0.0.1 (every module; the OpenSearch domain switched off,
an existing endpoint given instead), inspect what was created through the AWS APIs, destroy.

moto's control planes stand in for AWS here; nothing runs the Lambda code or the model.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from .helpers import (
    CONFIG_JS, FAKE_ACCOUNT, REGION, STACK, as_list, aws_client, copy_tree, local_aws_root, policy_statements, record_timing,
    running_moto,
)

pytestmark = pytest.mark.slow

EXISTING_OPENSEARCH = "search-existing.emulator.test"
EXISTING_DOMAIN_ARN = f"arn:aws:es:{REGION}:{FAKE_ACCOUNT}:domain/existing"


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    with running_moto(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture(scope="module")
def dev_stack(terraform, tmp_path_factory, moto_url, artifacts_dir, web_dir):
    """envs/dev applied against moto; yields (env dir, outputs, state); destroys at the end."""
    tree = copy_tree(tmp_path_factory.mktemp("emulator") / "terraform")
    env_dir = local_aws_root(
        tree / "envs" / "dev", moto_url,
        module_inputs={"lookalike": {"artifacts_dir": str(artifacts_dir), "web_dir": str(web_dir)}},
        values={"opensearch": {"create": False, "existing_endpoint": EXISTING_OPENSEARCH,
                               "existing_domain_arn": EXISTING_DOMAIN_ARN}},
    )
    terraform.run(env_dir, "init", "-input=false", "-no-color")
    start = time.monotonic()
    try:
        terraform.run(env_dir, "apply", "-auto-approve", "-input=false", "-no-color", timeout=900)
        record_timing("apply_dev_moto_s", time.monotonic() - start)
        outputs = {k: v["value"] for k, v in terraform.json(env_dir, "output", "-json").items()}
        state = terraform.json(env_dir, "show", "-json")
        yield env_dir, outputs, state
    finally:
        # Destroy must not need a build: point the artifacts at a folder that does not exist.
        start = time.monotonic()
        destroyed = terraform.run(
            env_dir, "destroy", "-auto-approve", "-input=false", "-no-color",
            "-var", f"artifacts_dir={env_dir / 'no-build-here'}", timeout=900, check=False,
        )
        record_timing("destroy_dev_moto_s", time.monotonic() - start)
        assert destroyed.returncode == 0, destroyed.stdout[-3000:] + destroyed.stderr[-3000:]


def state_resources(state: dict) -> dict[str, dict]:
    out = {}

    def walk(module):
        for r in module.get("resources", []):
            out[r["address"]] = r
        for child in module.get("child_modules", []):
            walk(child)

    walk(state["values"]["root_module"])
    return out


def test_outputs(dev_stack):
    _, outputs, _ = dev_stack
    assert outputs["sagemaker_endpoint_name"] == "lookalike-dev"
    assert outputs["opensearch_endpoint"] == EXISTING_OPENSEARCH
    assert outputs["images_bucket"] == "lookalike-dev-images"
    assert re.fullmatch(r"https://[a-z0-9]+\.execute-api\.eu-west-1\.amazonaws\.com/v1", outputs["api_url"])
    assert outputs["website_url"] == "http://lookalike-dev-web.s3-website-eu-west-1.amazonaws.com"
    assert outputs["cloud_index_environment"]["LOOKALIKE_OPENSEARCH_URL"] == f"https://{EXISTING_OPENSEARCH}"


def test_buckets(dev_stack, moto_url, artifacts_dir):
    s3 = aws_client("s3", moto_url)
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {"lookalike-dev-artifacts", "lookalike-dev-images", "lookalike-dev-web"} <= names
    for bucket in ("lookalike-dev-artifacts", "lookalike-dev-images"):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()), (bucket, block)
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        statements = policy_statements(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert {s["Condition"]["Bool"]["aws:SecureTransport"] for s in statements if "Bool" in s.get("Condition", {})} == {"false"}
        assert all(s["Effect"] == "Deny" for s in statements)
    uploaded = {o["Key"]: o for o in s3.list_objects_v2(Bucket="lookalike-dev-artifacts")["Contents"]}
    lambda_key = next(k for k in uploaded if k.startswith("lambda/"))
    body = s3.get_object(Bucket="lookalike-dev-artifacts", Key=lambda_key)["Body"].read()
    assert body == (artifacts_dir / "lambda.zip").read_bytes()
    assert any(k.startswith("models/") and k.endswith("/model.tar.gz") for k in uploaded)


def test_website_bucket_serves_page_and_config(dev_stack, moto_url, web_dir):
    _, outputs, _ = dev_stack
    s3 = aws_client("s3", moto_url)
    website = s3.get_bucket_website(Bucket="lookalike-dev-web")
    assert website["IndexDocument"]["Suffix"] == "index.html"
    block = s3.get_public_access_block(Bucket="lookalike-dev-web")["PublicAccessBlockConfiguration"]
    assert block["BlockPublicAcls"] and block["IgnorePublicAcls"]  # only the policy opens this bucket
    statements = policy_statements(s3.get_bucket_policy(Bucket="lookalike-dev-web")["Policy"])
    assert statements == [{
        "Sid": "PublicReadForStaticWebsite", "Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lookalike-dev-web/*",
    }]
    index = s3.get_object(Bucket="lookalike-dev-web", Key="index.html")
    assert index["ContentType"].startswith("text/html")
    assert index["Body"].read() == (web_dir / "index.html").read_bytes()
    config = s3.get_object(Bucket="lookalike-dev-web", Key="config.js")
    assert config["ContentType"].startswith("text/javascript") and config["CacheControl"] == "no-cache"
    match = CONFIG_JS.match(config["Body"].read().decode())
    assert match, "config.js must read window.LOOKALIKE_CONFIG = { apiBase: \"...\", apiKey: \"...\" };"
    assert match["api"] == outputs["api_url"]
    # dev opts in to exposing the key (website.expose_api_key = true): it must be the real one.
    keys = aws_client("apigateway", moto_url).get_api_keys(includeValues=True)["items"]
    assert match["key"] == next(k["value"] for k in keys if k["name"] == "lookalike-dev-search")


def test_lambda_function(dev_stack, moto_url):
    _, outputs, _ = dev_stack
    fn = aws_client("lambda", moto_url).get_function(FunctionName="lookalike-dev-search")["Configuration"]
    assert fn["Handler"] == "handler.handler" and fn["Runtime"] == "python3.12"
    assert fn["Timeout"] == 29 and fn["TracingConfig"]["Mode"] == "Active"
    assert fn["Role"] == f"arn:aws:iam::{FAKE_ACCOUNT}:role/lookalike-dev-search-lambda"
    assert fn["Environment"]["Variables"] == {
        "LOOKALIKE_SAGEMAKER_ENDPOINT": "lookalike-dev",
        "LOOKALIKE_OPENSEARCH_URL": f"https://{EXISTING_OPENSEARCH}",
        "LOOKALIKE_OPENSEARCH_INDEX": "lookalike",
        "LOOKALIKE_OPENSEARCH_AUTH": "sigv4",
        "LOOKALIKE_OPENSEARCH_MAX_RETRIES": "1",
        "LOOKALIKE_IMAGES_BUCKET": "lookalike-dev-images",
        "LOOKALIKE_IMAGES_PREFIX": "images/",
        "LOOKALIKE_CORS_ORIGINS": f"{outputs['website_url']},http://127.0.0.1:8000",
        "LOOKALIKE_URL_TTL_SECONDS": "900",
    }


def test_rest_api(dev_stack, moto_url):
    api = aws_client("apigateway", moto_url)
    rest = next(a for a in api.get_rest_apis()["items"] if a["name"] == "lookalike-dev-search")
    resources = {r["path"]: r for r in api.get_resources(restApiId=rest["id"])["items"]}
    assert set(resources["/search"]["resourceMethods"]) == {"POST", "OPTIONS"}
    search = resources["/search"]["id"]
    post = api.get_method(restApiId=rest["id"], resourceId=search, httpMethod="POST")
    assert post["apiKeyRequired"] and post["authorizationType"] == "NONE"
    integration = api.get_integration(restApiId=rest["id"], resourceId=search, httpMethod="POST")
    assert integration["type"] == "AWS_PROXY"
    assert integration["uri"].endswith(f":function:lookalike-dev-search/invocations")
    preflight = api.get_integration(restApiId=rest["id"], resourceId=search, httpMethod="OPTIONS")
    assert preflight["type"] == "MOCK"
    headers = api.get_integration_response(restApiId=rest["id"], resourceId=search, httpMethod="OPTIONS", statusCode="200")[
        "responseParameters"]
    _, outputs, _ = dev_stack
    assert headers["method.response.header.Access-Control-Allow-Origin"] == f"'{outputs['website_url']}'"
    assert headers["method.response.header.Access-Control-Allow-Methods"] == "'OPTIONS,POST'"

    stage = api.get_stage(restApiId=rest["id"], stageName="v1")
    assert stage["tracingEnabled"] and stage["accessLogSettings"]["destinationArn"].endswith(
        ":log-group:/aws/apigateway/lookalike-dev-search/access")
    settings = stage["methodSettings"]["*/*"]
    assert settings["throttlingRateLimit"] == 5 and settings["throttlingBurstLimit"] == 10
    usage_plan = next(p for p in api.get_usage_plans()["items"] if p["name"] == "lookalike-dev-search")
    assert usage_plan["apiStages"] == [{"apiId": rest["id"], "stage": "v1"}]
    assert usage_plan["quota"]["limit"] == 2000 and usage_plan["quota"]["period"] == "DAY"
    plan_keys = api.get_usage_plan_keys(usagePlanId=usage_plan["id"])["items"]
    assert [k["name"] for k in plan_keys] == ["lookalike-dev-search"]

    policy = json.loads(aws_client("lambda", moto_url).get_policy(FunctionName="lookalike-dev-search")["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"].endswith(f":{rest['id']}/*/POST/search")


def test_sagemaker_endpoint(dev_stack, moto_url):
    sm = aws_client("sagemaker", moto_url)
    endpoint = sm.describe_endpoint(EndpointName="lookalike-dev")
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 2}
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Image"] == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.3.0-cpu-py311"
    assert re.fullmatch(r"s3://lookalike-dev-artifacts/models/[0-9a-f]{16}/model\.tar\.gz", model["PrimaryContainer"]["ModelDataUrl"])
    assert model["ExecutionRoleArn"] == f"arn:aws:iam::{FAKE_ACCOUNT}:role/lookalike-dev-sagemaker"


def role_policy(moto_url: str, role: str) -> list[dict]:
    iam = aws_client("iam", moto_url)
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    return policy_statements(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])


def test_roles_are_least_privilege(dev_stack, moto_url):
    iam = aws_client("iam", moto_url)
    lambda_trust = policy_statements(iam.get_role(RoleName="lookalike-dev-search-lambda")["Role"]["AssumeRolePolicyDocument"])
    assert lambda_trust[0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    grants = {s["Sid"]: s for s in role_policy(moto_url, "lookalike-dev-search-lambda")}
    assert grants["EmbedQueryImage"]["Action"] == "sagemaker:InvokeEndpoint"
    assert grants["EmbedQueryImage"]["Resource"] == f"arn:aws:sagemaker:{REGION}:{FAKE_ACCOUNT}:endpoint/lookalike-dev"
    # What the query path sends: HEAD + GET _mapping at start, POST _search / _count; no writes.
    # Exactly the HTTP methods the query path sends (lookalike.index.opensearch.QUERY_REQUESTS, checked
    # against the real LambdaApp in tests/index/test_opensearch_index.py): HEAD /{index} included.
    from lookalike.index.opensearch import query_iam_actions

    assert sorted(as_list(grants["QueryKnnIndex"]["Action"])) == sorted(query_iam_actions())
    assert sorted(as_list(grants["QueryKnnIndex"]["Resource"])) == [EXISTING_DOMAIN_ARN, f"{EXISTING_DOMAIN_ARN}/*"]
    assert grants["SignImageUrls"] == {
        "Sid": "SignImageUrls", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::lookalike-dev-images/images/*"}
    sagemaker = {s["Sid"]: s for s in role_policy(moto_url, "lookalike-dev-sagemaker")}
    assert sagemaker["ReadModelArchive"]["Action"] == "s3:GetObject"
    assert re.fullmatch(r"arn:aws:s3:::lookalike-dev-artifacts/models/[0-9a-f]{16}/model\.tar\.gz", sagemaker["ReadModelArchive"]["Resource"])
    assert sagemaker["PullInferenceImage"]["Resource"] == f"arn:aws:ecr:{REGION}:763104351884:repository/pytorch-inference"


def test_no_applied_policy_is_open(dev_stack):
    """Across every policy in the applied state: no Allow to '*' except the public website read,
    no '*' / 'es:*' actions, '*' resources only for actions that have no resource level (in a KMS
    key policy '*' is the key itself)."""
    _, _, state = dev_stack
    resource_free = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    seen = 0
    for address, res in state_resources(state).items():
        if res["mode"] != "managed":
            continue
        for attr in ("policy", "assume_role_policy", "access_policies", "policy_document"):
            text = res["values"].get(attr)
            if not text or not isinstance(text, str) or not text.startswith("{"):
                continue
            for st in policy_statements(text):
                seen += 1
                actions = as_list(st.get("Action", []))
                assert "*" not in actions and "es:*" not in actions, address
                principal = st.get("Principal")
                if st["Effect"] == "Allow" and principal in ("*", {"AWS": "*"}):
                    assert address == f"{STACK}.module.frontend_site.aws_s3_bucket_policy.this" and actions == ["s3:GetObject"]
                if "kms:*" in actions:
                    assert address == f"{STACK}.module.artifacts.aws_kms_key.this[0]"
                    assert principal == {"AWS": f"arn:aws:iam::{FAKE_ACCOUNT}:root"}
                elif address.endswith("aws_kms_key.this[0]"):
                    assert principal in ({"AWS": f"arn:aws:iam::{FAKE_ACCOUNT}:root"}, {"Service": f"logs.{REGION}.amazonaws.com"})
                elif st["Effect"] == "Allow" and "*" in as_list(st.get("Resource", [])):
                    assert set(actions) <= resource_free, (address, actions)
    assert seen >= 20


def test_batch_transform_model_role_and_settings(dev_stack, moto_url):
    """The transform model runs the endpoint's archive; its role may read the archive, the job
    manifests and the images prefix, write the job outputs, use the stack's key; the settings
    `make ingest` exports are valid for `lookalike cloud-batch` and name these."""
    from lookalike.config import Settings

    _, outputs, state = dev_stack
    ingest = outputs["batch_ingest_environment"]
    sm = aws_client("sagemaker", moto_url)
    model = sm.describe_model(ModelName=ingest["LOOKALIKE_TRANSFORM_MODEL"])
    endpoint = sm.describe_model(ModelName=sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(
        EndpointName="lookalike-dev")["EndpointConfigName"])["ProductionVariants"][0]["ModelName"])
    for field in ("Image", "ModelDataUrl", "Environment"):
        assert model["PrimaryContainer"][field] == endpoint["PrimaryContainer"][field], field
    assert model["ExecutionRoleArn"] == f"arn:aws:iam::{FAKE_ACCOUNT}:role/lookalike-dev-batch-transform"
    # moto keeps no EnableNetworkIsolation (reads back false): test_plan.py checks what is sent.
    assert f"{STACK}.module.batch_transform.aws_iam_role_policy.this[0]" in state_resources(state)

    settings = Settings.from_env(ingest)
    assert settings.transform_prefix == "s3://lookalike-dev-artifacts/batch/"
    assert settings.transform_input_prefixes == ("s3://lookalike-dev-images/images/",)
    assert (settings.transform_instance_type, settings.transform_instance_count) == ("ml.c5.xlarge", 1)
    assert settings.images_bucket == "lookalike-dev-images" and settings.opensearch_auth == "sigv4"
    key = settings.transform_kms_key
    assert re.fullmatch(rf"arn:aws:kms:{REGION}:{FAKE_ACCOUNT}:key/[0-9a-f-]+", key)

    grants = {s["Sid"]: s for s in role_policy(moto_url, "lookalike-dev-batch-transform")}
    archive = model["PrimaryContainer"]["ModelDataUrl"].replace("s3://", "arn:aws:s3:::")
    assert grants["ReadModelArchive"]["Action"] == "s3:GetObject" and grants["ReadModelArchive"]["Resource"] == archive
    assert grants["ReadJobManifests"]["Resource"] == "arn:aws:s3:::lookalike-dev-artifacts/batch/manifests/*"
    assert grants["ReadInputImages"]["Resource"] == "arn:aws:s3:::lookalike-dev-images/images/*"
    assert grants["ListInputPrefixes0"]["Action"] == "s3:ListBucket"
    assert grants["ListInputPrefixes0"]["Resource"] == "arn:aws:s3:::lookalike-dev-images"
    assert grants["ListInputPrefixes0"]["Condition"] == {"StringLike": {"s3:prefix": "images/*"}}
    assert sorted(as_list(grants["WriteJobOutputs"]["Action"])) == ["s3:AbortMultipartUpload", "s3:PutObject"]
    assert grants["WriteJobOutputs"]["Resource"] == "arn:aws:s3:::lookalike-dev-artifacts/batch/output/*"
    assert sorted(as_list(grants["UseStackKey"]["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert grants["UseStackKey"]["Resource"] == key and grants["EncryptJobVolume"]["Resource"] == key
    assert grants["EncryptJobVolume"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    s3_actions = {a for s in grants.values() for a in as_list(s["Action"]) if a.startswith("s3:")}
    assert s3_actions == {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload"}
