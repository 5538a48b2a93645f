"""Apply envs/dev to LocalStack with tflocal, inspect it through the AWS APIs and LocalStack's S3
website and execute-api endpoints, search from the published page in Chromium, destroy.

LocalStack community stands in for AWS where it emulates the service without Docker: S3 (website
hosting included), IAM, STS, KMS, CloudWatch Logs, Lambda (created; never run, see
scripts/localstack_server.py) and API Gateway REST (control plane and execute-api). OpenSearch and
SageMaker are switched off (``opensearch.create`` / ``sagemaker.create = false`` with existing
endpoints): LocalStack community has neither, and test_emulator.py applies SageMaker's control plane
to moto. The environment keeps its own S3 backend (``use_lockfile``): tflocal points it at
LocalStack's S3, so state and lock file live there.

Beyond the moto apply this checks what moto does not do: the page served by S3's *website*
endpoint (index and error documents) and searched from in Chromium, API Gateway answering requests
(CORS pre-flight through the MOCK integration's template, API key, request body validation), S3
conditional writes holding Terraform's state lock, and that a second plan changes nothing.

LocalStack gaps, observed with localstack-core 2026.3.0, that the assertions work around:
- Lambda does not keep ``KMSKeyArn``: the second plan re-sets the function's ``kms_key_arn``.
- API Gateway applies only the status code of a gateway response, not its headers or template.
- The website endpoint sends ``Content-Type`` and ``ETag`` but not the object's ``Cache-Control``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from types import SimpleNamespace

import httpx
import pytest

from tests.browser.test_web import (  # noqa: F401  (page: fixture)
    CHROMIUM_ARGS, QUERY, SCORE, page, playwright_api, upload_and_wait, wait_images_loaded,
)
from tests.conftest import ARTIFACTS, LiveServer

from .helpers import (
    CONFIG_JS, LOCALSTACK_ACCOUNT as ACCOUNT, REGION, as_list, aws_client, copy_tree, local_aws_root,
    policy_statements, record_timing,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.browser]
expect = playwright_api.expect

NAME = "lookalike-dev"
WEB_BUCKET = f"{NAME}-web"
FUNCTION = f"{NAME}-search"
EXISTING_OPENSEARCH = "search-existing.emulator.test"
EXISTING_DOMAIN_ARN = f"arn:aws:es:{REGION}:{ACCOUNT}:domain/existing"
EXISTING_ENDPOINT = "lookalike-existing"
# tflocal names the S3 backend's bucket when the configuration does not (backend.hcl does, in AWS).
STATE_BUCKET = "tf-test-state"
STATE_KEY = "lookalike/dev/terraform.tfstate"
CONTENT_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}


def output(run) -> str:
    return run.stdout + run.stderr


@pytest.fixture(scope="module")
def client(localstack):
    return lambda service: aws_client(service, localstack.url)


@pytest.fixture(scope="module")
def site_origin(localstack) -> str:
    """Browser origin of the page on LocalStack's S3 website endpoint."""
    return f"http://{localstack.website_host(WEB_BUCKET)}"


@pytest.fixture(scope="module")
def api(demo_index_dir, site_origin):
    """``lookalike serve`` on the demo index, allowing the page's origin on LocalStack (CORS).

    The page's config.js points here: LocalStack cannot run the Lambda behind API Gateway."""
    server = LiveServer(demo_index_dir, env={"LOOKALIKE_CORS_ORIGINS": site_origin})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tflocal(terraform, localstack):
    return localstack.tflocal(terraform)


@pytest.fixture(scope="module")
def stack(tflocal, api, artifacts_dir, web_dir, tmp_path_factory):
    """envs/dev applied to LocalStack (state in its S3); destroyed at the end unless a test did."""
    tree = copy_tree(tmp_path_factory.mktemp("localstack-apply") / "terraform")
    env_dir = local_aws_root(
        tree / "envs" / "dev", None,
        module_inputs={"lookalike": {"artifacts_dir": str(artifacts_dir), "web_dir": str(web_dir)}},
        values={"opensearch": {"create": False, "existing_endpoint": EXISTING_OPENSEARCH,
                               "existing_domain_arn": EXISTING_DOMAIN_ARN},
                "sagemaker": {"create": False, "existing_endpoint_name": EXISTING_ENDPOINT}},
    )
    # The page asks a local API instead of API Gateway: in this copy of the stack only.
    (tree / "modules" / "stack" / "zz_localstack_override.tf").write_text(
        f'module "frontend_site" {{\n  api_url = "{api.url}"\n}}\n')
    # Bucket hosts like tf-test-state.127.0.0.1 do not resolve: path-style for the backend too.
    tflocal.run(env_dir, "init", "-input=false", "-no-color", "-backend-config=use_path_style=true")
    deployed = SimpleNamespace(dir=env_dir, destroyed=False)
    start = time.monotonic()
    try:
        tflocal.run(env_dir, "apply", "-auto-approve", "-input=false", "-no-color", timeout=900)
        record_timing("apply_dev_localstack_s", time.monotonic() - start)
        deployed.outputs = {k: v["value"] for k, v in tflocal.json(env_dir, "output", "-json").items()}
        yield deployed
    finally:
        if not deployed.destroyed:
            destroy(tflocal, env_dir)


def destroy(tflocal, env_dir):
    start = time.monotonic()
    # Destroy must not need a build: point the artifacts at a folder that does not exist.
    run = tflocal.run(env_dir, "destroy", "-auto-approve", "-input=false", "-no-color",
                      "-var", f"artifacts_dir={env_dir / 'no-build-here'}", timeout=900, check=False)
    record_timing("destroy_dev_localstack_s", time.monotonic() - start)
    assert run.returncode == 0, output(run)[-4000:]


def role_policy(client, role: str) -> list[dict]:
    iam = client("iam")
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    return policy_statements(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])


def rest_api(client) -> dict:
    (api,) = [a for a in client("apigateway").get_rest_apis()["items"] if a["name"] == FUNCTION]
    return api


def test_outputs(stack, api):
    outputs = stack.outputs
    assert outputs["sagemaker_endpoint_name"] == EXISTING_ENDPOINT
    assert outputs["opensearch_endpoint"] == EXISTING_OPENSEARCH
    assert outputs["lambda_function_name"] == FUNCTION
    assert outputs["website_url"] == f"http://{WEB_BUCKET}.s3-website-{REGION}.amazonaws.com"
    assert outputs["lambda_environment"]["LOOKALIKE_SAGEMAKER_ENDPOINT"] == EXISTING_ENDPOINT
    assert outputs["cloud_index_environment"]["LOOKALIKE_OPENSEARCH_URL"] == f"https://{EXISTING_OPENSEARCH}"


def test_state_and_lock_live_in_localstack_s3(stack, client):
    s3 = client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=STATE_BUCKET).get("Contents", [])]
    assert keys == [STATE_KEY], "the lock file is gone after apply, the state is where versions.tf says"
    state = json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=STATE_KEY)["Body"].read())
    managed = [r for r in state["resources"] if r["mode"] == "managed"]
    assert len(managed) >= 40 and all(r["module"].startswith("module.lookalike.") for r in managed)
    assert not [r for r in managed if "inference_endpoint" in r["module"] or "search_domain" in r["module"]]


def test_a_held_lock_stops_terraform(stack, tflocal, client):
    """use_lockfile: Terraform creates <key>.tflock with If-None-Match, which S3 refuses while
    another run holds it."""
    s3 = client("s3")
    lock = f"{STATE_KEY}.tflock"
    held = {"ID": "5e0c0f1e-held-by-test", "Operation": "OperationTypeApply", "Who": "someone@elsewhere",
            "Version": "1.11.4", "Created": "2026-12-01T00:00:00Z", "Path": f"{STATE_BUCKET}/{STATE_KEY}"}
    s3.put_object(Bucket=STATE_BUCKET, Key=lock, Body=json.dumps(held).encode(), IfNoneMatch="*")
    try:
        run = tflocal.run(stack.dir, "plan", "-input=false", "-no-color", "-refresh=false", "-lock-timeout=0s",
                          check=False)
        assert run.returncode != 0
        message = " ".join(output(run).replace("│", " ").split())
        assert "Error acquiring the state lock" in message and "someone@elsewhere" in message, message[-2000:]
    finally:
        s3.delete_object(Bucket=STATE_BUCKET, Key=lock)


def test_second_plan_changes_nothing_localstack_keeps(stack, tflocal):
    """Applying again would change nothing but what LocalStack drops: the function's KMS key."""
    start = time.monotonic()
    tflocal.run(stack.dir, "plan", "-input=false", "-no-color", "-out=tfplan-again", timeout=600)
    record_timing("plan_again_dev_localstack_s", time.monotonic() - start)
    plan = tflocal.json(stack.dir, "show", "-json", "tfplan-again")
    changes = {r["address"]: r["change"] for r in plan["resource_changes"] if r["change"]["actions"] != ["no-op"]}
    assert set(changes) <= {"module.lookalike.module.search_api.aws_lambda_function.this"}, sorted(changes)
    for change in changes.values():
        differ = {k for k in change["after"] if change["before"].get(k) != change["after"][k]}
        assert change["actions"] == ["update"] and differ == {"kms_key_arn"}, (change["actions"], differ)
        assert not change["before"]["kms_key_arn"] and change["after"]["kms_key_arn"].startswith("arn:aws:kms:")


def test_private_buckets_and_uploads(stack, client, artifacts_dir):
    s3 = client("s3")
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert names == {f"{NAME}-artifacts", f"{NAME}-images", WEB_BUCKET, STATE_BUCKET}
    key_arn = next(k for k in client("kms").list_aliases()["Aliases"] if k["AliasName"] == f"alias/{NAME}")
    key = client("kms").describe_key(KeyId=key_arn["TargetKeyId"])["KeyMetadata"]
    assert key["Enabled"] and client("kms").get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]
    for bucket in (f"{NAME}-artifacts", f"{NAME}-images"):
        assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert sse["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]}
        assert sse["BucketKeyEnabled"]
        statements = policy_statements(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert statements and all(st["Effect"] == "Deny" for st in statements)
        assert {"Bool": {"aws:SecureTransport": "false"}} in [st.get("Condition") for st in statements]
        assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
            {"ObjectOwnership": "BucketOwnerEnforced"}]
        # Only the page bucket is a website.
        with pytest.raises(s3.exceptions.ClientError, match="NoSuchWebsiteConfiguration"):
            s3.get_bucket_website(Bucket=bucket)
    uploaded = {o["Key"] for o in s3.list_objects_v2(Bucket=f"{NAME}-artifacts")["Contents"]}
    lambda_key = next(k for k in uploaded if k.startswith("lambda/"))
    obj = s3.get_object(Bucket=f"{NAME}-artifacts", Key=lambda_key)
    assert obj["Body"].read() == (artifacts_dir / "lambda.zip").read_bytes()
    assert obj["ServerSideEncryption"] == "aws:kms" and obj["SSEKMSKeyId"] == key["Arn"]
    model_sha = hashlib.sha256((artifacts_dir / "model.tar.gz").read_bytes()).hexdigest()
    assert f"models/{model_sha[:16]}/model.tar.gz" in uploaded


def test_website_endpoint_serves_the_page_and_its_config(stack, client, localstack, web_dir, api):
    s3 = client("s3")
    website = s3.get_bucket_website(Bucket=WEB_BUCKET)
    assert website["IndexDocument"] == {"Suffix": "index.html"} and website["ErrorDocument"] == {"Key": "index.html"}
    block = s3.get_public_access_block(Bucket=WEB_BUCKET)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
                     "RestrictPublicBuckets": False}
    assert policy_statements(s3.get_bucket_policy(Bucket=WEB_BUCKET)["Policy"]) == [{
        "Sid": "PublicReadForStaticWebsite", "Effect": "Allow", "Principal": "*",
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{WEB_BUCKET}/*"}]

    files = sorted(p.relative_to(web_dir).as_posix() for p in web_dir.rglob("*")
                   if p.is_file() and not p.name.startswith(".") and p.name != "config.js")
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=WEB_BUCKET)["Contents"]) == sorted([*files, "config.js"])
    with httpx.Client(base_url=localstack.url, headers={"Host": localstack.website_host(WEB_BUCKET)}) as web:
        for key in files:
            served = web.get(f"/{key}")
            assert served.status_code == 200 and served.content == (web_dir / key).read_bytes(), key
            kind = CONTENT_TYPES.get(key.rsplit(".", 1)[-1])
            assert kind is None or served.headers["content-type"].startswith(kind), (key, served.headers)
            # The object carries its Cache-Control (LocalStack's website endpoint does not send it).
            expected = "no-cache" if key.endswith(".html") else "public, max-age=300"
            assert s3.head_object(Bucket=WEB_BUCKET, Key=key)["CacheControl"] == expected, key
        index = web.get("/")
        assert index.status_code == 200 and index.content == (web_dir / "index.html").read_bytes()
        missing = web.get("/no/such/page")
        assert missing.status_code == 404 and missing.content == (web_dir / "index.html").read_bytes()
        config = web.get("/config.js")
    assert config.headers["content-type"].startswith("text/javascript")
    match = CONFIG_JS.match(config.text)
    assert match, config.text
    assert match["api"] == api.url  # this test's override of the page's API
    # dev exposes the key (website.expose_api_key): the real one of API Gateway.
    keys = client("apigateway").get_api_keys(includeValues=True)["items"]
    assert match["key"] == next(k["value"] for k in keys if k["name"] == FUNCTION)

    with httpx.Client(base_url=localstack.url, headers={"Host": localstack.website_host(f"{NAME}-images")}) as web:
        assert web.get("/").status_code == 404  # a private bucket has no website


def test_iam_roles_are_least_privilege(stack, client):
    iam = client("iam")
    roles = {r["RoleName"]: r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(NAME)}
    # No SageMaker execution role: sagemaker.create = false.
    assert set(roles) == {f"{FUNCTION}-lambda", f"{FUNCTION}-apigateway-cloudwatch"}
    trust = policy_statements(roles[f"{FUNCTION}-lambda"]["AssumeRolePolicyDocument"])
    assert trust == [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}]
    grants = {s["Sid"]: s for s in role_policy(client, f"{FUNCTION}-lambda")}
    assert set(grants) == {"EmbedQueryImage", "QueryKnnIndex", "SignImageUrls", "DecryptImagesAndEnvironment",
                           "WriteFunctionLogs", "WriteTraces"}
    # The existing endpoint's ARN, derived from its name and the account STS reports.
    assert grants["EmbedQueryImage"]["Resource"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{EXISTING_ENDPOINT}"
    # Exactly the HTTP methods the query path sends (lookalike.index.opensearch.QUERY_REQUESTS, checked
    # against the real LambdaApp in tests/index/test_opensearch_index.py): HEAD /{index} included.
    from lookalike.index.opensearch import query_iam_actions

    assert sorted(as_list(grants["QueryKnnIndex"]["Action"])) == sorted(query_iam_actions())
    assert sorted(as_list(grants["QueryKnnIndex"]["Resource"])) == [EXISTING_DOMAIN_ARN, f"{EXISTING_DOMAIN_ARN}/*"]
    assert grants["SignImageUrls"]["Resource"] == f"arn:aws:s3:::{NAME}-images/images/*"
    assert grants["WriteFunctionLogs"]["Resource"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{FUNCTION}:*")
    attached = iam.list_attached_role_policies(RoleName=f"{FUNCTION}-apigateway-cloudwatch")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonAPIGatewayPushToCloudWatchLogs"]
    account = client("apigateway").get_account()
    assert account["cloudwatchRoleArn"] == roles[f"{FUNCTION}-apigateway-cloudwatch"]["Arn"]


def test_lambda_function_and_logs(stack, client, artifacts_dir, site_origin):
    lam = client("lambda")
    fn = lam.get_function(FunctionName=FUNCTION)["Configuration"]
    assert fn["State"] == "Active" and fn["LastUpdateStatus"] == "Successful"
    assert fn["Handler"] == "handler.handler" and fn["Runtime"] == "python3.12" and fn["Timeout"] == 29
    assert fn["MemorySize"] == 512 and fn["TracingConfig"] == {"Mode": "Active"}
    assert fn["Role"] == f"arn:aws:iam::{ACCOUNT}:role/{FUNCTION}-lambda"
    # The code LocalStack took from the artifacts bucket is the uploaded zip.
    assert fn["CodeSha256"] == base64.b64encode(hashlib.sha256((artifacts_dir / "lambda.zip").read_bytes()).digest()).decode()
    assert fn["Environment"]["Variables"] == {
        "LOOKALIKE_SAGEMAKER_ENDPOINT": EXISTING_ENDPOINT,
        "LOOKALIKE_OPENSEARCH_URL": f"https://{EXISTING_OPENSEARCH}",
        "LOOKALIKE_OPENSEARCH_INDEX": "lookalike",
        "LOOKALIKE_OPENSEARCH_AUTH": "sigv4",
        "LOOKALIKE_OPENSEARCH_MAX_RETRIES": "1",
        "LOOKALIKE_IMAGES_BUCKET": f"{NAME}-images",
        "LOOKALIKE_IMAGES_PREFIX": "images/",
        "LOOKALIKE_CORS_ORIGINS": f"{stack.outputs['website_url']},http://127.0.0.1:8000",
        "LOOKALIKE_URL_TTL_SECONDS": "900",
    }
    (statement,) = json.loads(lam.get_policy(FunctionName=FUNCTION)["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == (
        f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{rest_api(client)['id']}/*/POST/search")

    key = next(k for k in client("kms").list_aliases()["Aliases"] if k["AliasName"] == f"alias/{NAME}")
    key_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key['TargetKeyId']}"
    groups = {g["logGroupName"]: g for g in client("logs").describe_log_groups(logGroupNamePrefix="/aws/")["logGroups"]}
    assert set(groups) == {f"/aws/lambda/{FUNCTION}", f"/aws/apigateway/{FUNCTION}/access"}
    assert all(g["retentionInDays"] == 30 and g["kmsKeyId"] == key_arn for g in groups.values())


def test_rest_api_resources_stage_and_usage_plan(stack, client):
    apigw = client("apigateway")
    rest = rest_api(client)
    assert rest["endpointConfiguration"]["types"] == ["REGIONAL"]
    resources = {r["path"]: r for r in apigw.get_resources(restApiId=rest["id"])["items"]}
    assert set(resources) == {"/", "/search"} and set(resources["/search"]["resourceMethods"]) == {"POST", "OPTIONS"}
    post = apigw.get_method(restApiId=rest["id"], resourceId=resources["/search"]["id"], httpMethod="POST")
    assert post["apiKeyRequired"] and post["requestModels"] == {"application/json": "SearchRequest"}
    integration = post["methodIntegration"]
    assert integration["type"] == "AWS_PROXY" and integration["timeoutInMillis"] == 29000
    assert integration["uri"].endswith(f":function:{FUNCTION}/invocations")
    stage = apigw.get_stage(restApiId=rest["id"], stageName="v1")
    assert stage["tracingEnabled"]
    assert stage["accessLogSettings"]["destinationArn"].endswith(f":log-group:/aws/apigateway/{FUNCTION}/access")
    settings = stage["methodSettings"]["*/*"]
    assert settings["throttlingRateLimit"] == 5 and settings["throttlingBurstLimit"] == 10 and settings["metricsEnabled"]
    (plan,) = [p for p in apigw.get_usage_plans()["items"] if p["name"] == FUNCTION]
    assert plan["apiStages"] == [{"apiId": rest["id"], "stage": "v1"}]
    assert plan["quota"]["limit"] == 2000 and plan["quota"]["period"] == "DAY"
    assert [k["name"] for k in apigw.get_usage_plan_keys(usagePlanId=plan["id"])["items"]] == [FUNCTION]
    # Stored as configured (LocalStack's execute-api does not apply their headers and templates).
    for kind in ("DEFAULT_4XX", "DEFAULT_5XX"):
        response = apigw.get_gateway_response(restApiId=rest["id"], responseType=kind)
        assert response["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == (
            f"'{stack.outputs['website_url']}'")
        assert '"error"' in response["responseTemplates"]["application/json"]


def test_rest_api_answers_preflight_key_and_validation(stack, client, localstack):
    """Through LocalStack's execute-api endpoint, before the Lambda (which cannot run here)."""
    base = localstack.execute_api(rest_api(client)["id"], "v1")
    key = next(k["value"] for k in client("apigateway").get_api_keys(includeValues=True)["items"] if k["name"] == FUNCTION)
    website = stack.outputs["website_url"]
    with httpx.Client(timeout=60) as http:
        for origin, allowed in ((website, website), ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
                                ("http://elsewhere.example", website)):
            preflight = http.options(f"{base}/search", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
            assert preflight.status_code == 200, preflight.text
            # The MOCK integration's template echoes an allowed origin, else names the page's.
            assert preflight.headers["access-control-allow-origin"] == allowed, origin
            assert preflight.headers["access-control-allow-methods"] == "OPTIONS,POST"
            assert "X-Api-Key" in preflight.headers["access-control-allow-headers"]
        body = {"image": base64.b64encode(QUERY.read_bytes()).decode(), "k": 3}
        no_key = http.post(f"{base}/search", json=body)
        assert no_key.status_code == 403, no_key.text
        bad_body = http.post(f"{base}/search", json={"k": 3}, headers={"x-api-key": key})
        assert bad_body.status_code == 400 and "Invalid request body" in bad_body.text
        # Key and body pass: API Gateway calls the function, which LocalStack cannot run without Docker.
        valid = http.post(f"{base}/search", json=body, headers={"x-api-key": key})
        assert valid.status_code >= 500, valid.text


@pytest.fixture(scope="module")
def browser(chromium_path):
    """Chromium that resolves LocalStack's *.localhost.localstack.cloud names to 127.0.0.1."""
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP *.localhost.localstack.cloud 127.0.0.1"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=args)
        yield browser
        browser.close()


def test_page_from_the_website_endpoint_searches_the_configured_api(page, stack, site_origin, api, client):
    key = next(k["value"] for k in client("apigateway").get_api_keys(includeValues=True)["items"] if k["name"] == FUNCTION)
    searches = []
    page.on("request", lambda r: searches.append(r) if r.method == "POST" and "/search" in r.url else None)
    served = page.goto(site_origin + "/")
    assert served.status == 200 and served.headers.get("x-localstack") == "true"
    expect(page.locator("#collection-info")).to_contain_text("187 images indexed")
    expect(page.locator("#collection-info")).to_contain_text(api.url)
    page.fill("#k-input", "6")

    cards = upload_and_wait(page, QUERY, 1, 6)

    assert [r.url for r in searches] == [f"{api.url}/search"]
    assert searches[0].headers.get("x-api-key") == key  # the stack's key, from config.js
    assert searches[0].header_value("origin") == site_origin  # the origin the API allows
    for card in cards:
        assert card["label"].strip() and SCORE.match(card["score"]), card
        assert card["src"].startswith(f"{api.url}/images/"), card
    assert cards[0]["label"] == "birds" and float(cards[0]["score"]) >= 0.999
    assert [float(c["score"]) for c in cards] == sorted((float(c["score"]) for c in cards), reverse=True)
    wait_images_loaded(page)
    expect(page.locator("#error")).to_be_hidden()
    page.locator("#k-input").blur()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "localstack-page.png"), full_page=True)


def test_destroy_removes_everything(stack, tflocal, client, localstack):
    """Last: destroy (without a build) and look for anything left behind."""
    stack.destroyed = True
    destroy(tflocal, stack.dir)
    s3 = client("s3")
    assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {STATE_BUCKET}
    state = json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=STATE_KEY)["Body"].read())
    assert state["resources"] == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=STATE_BUCKET)["Contents"]] == [STATE_KEY]
    assert not [r for r in client("iam").list_roles()["Roles"] if r["RoleName"].startswith(NAME)]
    assert client("lambda").list_functions()["Functions"] == []
    apigw = client("apigateway")
    assert apigw.get_rest_apis()["items"] == [] and apigw.get_usage_plans()["items"] == []
    assert apigw.get_api_keys()["items"] == []
    assert client("logs").describe_log_groups(logGroupNamePrefix="/aws/")["logGroups"] == []
    kms = client("kms")
    assert not [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == f"alias/{NAME}"]
    keys = [kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"] for k in kms.list_keys()["Keys"]]
    assert keys and all(k["KeyState"] == "PendingDeletion" for k in keys if k["KeyManager"] == "CUSTOMER")
    with httpx.Client(base_url=localstack.url, headers={"Host": localstack.website_host(WEB_BUCKET)}) as web:
        assert web.get("/").status_code == 404
