"""deploy/k8s: the kustomize base and the example overlay, rendered by `kubectl kustomize` and
validated offline against Kubernetes' OpenAPI schemas (strict: unknown fields fail) as the PyPI
package kubernetes-validate ships them, for the oldest Kubernetes we support and the newest it knows;
then what the schemas cannot say: probes, drain, selectors, IRSA, the secret."""

import copy
import pathlib
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy"
# The lifecycle `sleep` action (preStop without a shell in the image) is on by default from 1.30.
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# Custom resources: not in Kubernetes' schemas; checked by the assertions below.
CUSTOM = {"ServiceMonitor"}


def render(path):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed (.ci/run installs it)"
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=["base", "overlays/example"])
def docs(request):
    return render(DEPLOY / "k8s" / request.param)


def by_kind(docs):
    return {d["kind"]: d for d in docs}


def test_every_resource_is_valid(docs):
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                            "Service", "ServiceAccount", "ServiceMonitor"])
    for doc in docs:
        if doc["kind"] in CUSTOM:
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_schemas_refuse_mistakes(docs):
    deployment = by_kind(docs)["Deployment"]
    container = ["spec", "template", "spec", "containers", 0]
    for path, value in [(container + ["livenessProbe", "httpGet", "prot"], "http"),
                        (container + ["resources", "requests", "cpu"], {"m": 250}),
                        (["spec", "replicas"], "two")]:
        bad = copy.deepcopy(deployment)
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


def test_deployment(docs):
    kinds = by_kind(docs)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["ports"][0]["containerPort"] == int(env["LISTEN_ADDR"]["value"].rsplit(":", 1)[1])
    # The pod gets longer than preStop plus the gateway's drain (SHUTDOWN_GRACE).
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + int(env["SHUTDOWN_GRACE"]["value"])
    assert env["MASTER_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "bedrock-gateway-master-key", "key": "MASTER_API_KEY"}
    assert "value" not in env["MASTER_API_KEY"]
    # Replicas share keys and limits: the DynamoDB store, never the embedded file.
    assert env["STORE_BACKEND"]["value"] == "dynamodb"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    # The image's user; nothing writable but /tmp.
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"]
    # The config file: the ConfigMap of the render (kustomize adds a hash to its name), at PROXY_CONFIG.
    config = kinds["ConfigMap"]
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    (file,) = config["data"]
    assert env["PROXY_CONFIG"]["value"] == f"{mount['mountPath']}/{file}"
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    assert kinds["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


def test_selectors_find_the_pods(docs):
    kinds = by_kind(docs)
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selectors = [kinds["Deployment"]["spec"]["selector"]["matchLabels"], kinds["Service"]["spec"]["selector"],
                 kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]]
    for selector in selectors:
        assert selector and selector.items() <= labels.items(), selector
    service_labels = kinds["Service"]["metadata"]["labels"]
    monitor = kinds["ServiceMonitor"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service_labels.items()
    assert monitor["endpoints"][0]["port"] in {p["name"] for p in kinds["Service"]["spec"]["ports"]}
    assert monitor["endpoints"][0]["path"] == "/metrics"
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", kinds["Deployment"]["metadata"]["name"])
    assert kinds["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_example_overlay():
    kinds = by_kind(render(DEPLOY / "k8s/overlays/example"))
    assert {d["metadata"]["namespace"] for d in kinds.values()} == {"llm-gateway"}
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith("/bedrock-gateway:0.1.0")
    assert {"name": "AWS_REGION", "value": "us-west-2"} in container["env"]
    role = kinds["ServiceAccount"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role == "arn:aws:iam::111122223333:role/llm-gateway-bedrock"
