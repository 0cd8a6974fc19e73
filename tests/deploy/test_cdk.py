"""deploy/cdk: `cdk synth` runs offline (no AWS account, no credentials, no lookups) and the
CloudFormation template passes cfn-lint, for both listener set-ups. The CDK app's own assertion tests
(deploy/cdk/test, node's test runner) run in `cargo xtask test` too."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

CDK = pathlib.Path(__file__).resolve().parents[2] / "deploy/cdk"
IMAGE = "111122223333.dkr.ecr.us-west-2.amazonaws.com/bedrock-gateway:0.1.0"
CERT = "arn:aws:acm:us-west-2:111122223333:certificate/0f0f0f0f-1111-2222-3333-444455556666"
# W3005: the DependsOn that aws-cdk-lib's ApplicationLoadBalancedFargateService adds beside a Ref to the
# same listener: redundant, harmless, and not ours to remove.
IGNORED = "W3005"


def offline_env(tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "CDK_DISABLE_VERSION_CHECK": "1", "CDK_DISABLE_CLI_TELEMETRY": "true",
            "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
            "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.mark.parametrize("extra", [[], ["-c", f"certificateArn={CERT}"]], ids=["http", "https"])
def test_synth_offline_and_cfn_lint(tmp_path, extra):
    cdk = CDK / "node_modules/.bin/cdk"
    assert cdk.exists(), "deploy/cdk/node_modules is missing: npm ci in deploy/cdk (cargo xtask test does)"
    out = tmp_path / "cdk.out"
    synth = subprocess.run([str(cdk), "synth", "--no-notices", "--quiet", "-o", str(out), "-c", f"image={IMAGE}",
                            *extra], cwd=CDK, capture_output=True, text=True, env=offline_env(tmp_path), timeout=300)
    assert synth.returncode == 0, synth.stderr
    template = out / "BedrockGateway.template.json"
    doc = json.loads(template.read_text())
    listeners = [r for r in doc["Resources"].values() if r["Type"] == "AWS::ElasticLoadBalancingV2::Listener"]
    assert len(listeners) == (2 if extra else 1)
    # Nothing to build or upload at deploy time: the image comes from a registry.
    assets = json.loads((out / "BedrockGateway.assets.json").read_text())
    assert not assets.get("dockerImages"), assets
    lint = subprocess.run([str(pathlib.Path(sys.executable).parent / "cfn-lint"), "--ignore-checks", IGNORED, "--",
                           str(template)], capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_cfn_lint_finds_errors(tmp_path):
    # The linter is live: a table with a misspelt property fails.
    bad = {"Resources": {"T": {"Type": "AWS::DynamoDB::Table", "Properties": {
        "BilingMode": "PAY_PER_REQUEST", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}}}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    lint = subprocess.run([str(pathlib.Path(sys.executable).parent / "cfn-lint"), "--", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode != 0 and "BilingMode" in lint.stdout, lint.stdout
