"""deploy/compose.yaml: valid against the Compose specification's JSON schema (vendored in
schemas/), and wired as the README says: images of this version, the mounts the Grafana and
Prometheus files need, endpoints that name services of the file."""

import copy
import json
import pathlib

import jsonschema
import pytest
import yaml

HERE = pathlib.Path(__file__).resolve().parent
DEPLOY = HERE.parents[1] / "deploy"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((HERE / "schemas/compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def errors(validator, doc):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_valid_against_the_compose_specification(compose, validator):
    assert errors(validator, compose) == []


def test_the_schema_refuses_what_compose_refuses(compose, validator):
    # The schema is live: a misspelt key, a port of the wrong type and a bad restart policy fail.
    for path, value in [
        (("services", "gateway", "enviroment"), {"A": "b"}),
        (("services", "gateway", "ports"), 8000),
        (("services", "gateway", "depends_on", "setup-tables", "condition"), "when_ready"),
    ]:
        bad = copy.deepcopy(compose)
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert errors(validator, bad), path


def test_services(compose, version):
    services = compose["services"]
    assert set(services) == {"gateway", "setup-tables", "bedrock-sim", "dynamodb", "prometheus", "grafana"}
    # The images `cargo xtask image` builds, at the workspace version.
    assert services["gateway"]["image"] == f"localhost/bedrock-gateway:{version}"
    assert services["setup-tables"]["image"] == f"localhost/bedrock-gateway:{version}"
    assert services["bedrock-sim"]["image"] == f"localhost/bedrock-sim:{version}"
    assert services["dynamodb"]["image"].startswith("amazon/dynamodb-local:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    # Third-party images pinned to a version, never `latest`.
    for name, service in services.items():
        tag = service["image"].rsplit(":", 1)[1]
        assert tag and tag != "latest", name


def test_gateway_reaches_the_services_of_the_file(compose):
    services = compose["services"]
    env = services["gateway"]["environment"]
    assert env["STORE_BACKEND"] == "dynamodb"
    assert env["LISTEN_ADDR"] == "0.0.0.0:8000"
    for var in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
                "AWS_ENDPOINT_URL_BEDROCK_MANTLE", "AWS_ENDPOINT_URL_BEDROCK"]:
        host = env[var].split("//", 1)[1].split(":", 1)[0]
        assert host in services, (var, env[var])
    assert services["setup-tables"]["command"] == ["setup-tables"]
    assert services["setup-tables"]["environment"]["AWS_ENDPOINT_URL_DYNAMODB"] == env["AWS_ENDPOINT_URL_DYNAMODB"]
    assert services["gateway"]["depends_on"]["setup-tables"]["condition"] == "service_completed_successfully"
    # Published on the loopback only.
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    # Longer than the gateway's default drain (SHUTDOWN_GRACE, 30 s).
    assert services["gateway"]["stop_signal"] == "SIGTERM"
    assert int(services["gateway"]["stop_grace_period"].rstrip("s")) > 30


def test_prometheus_and_grafana_mounts(compose):
    services = compose["services"]
    assert set(services["prometheus"]["volumes"]) == {
        "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
        "./prometheus/rules.yaml:/etc/prometheus/rules.yaml:ro",
    }
    assert set(services["grafana"]["volumes"]) == {
        "./grafana/provisioning:/etc/grafana/provisioning:ro",
        "./grafana/gateway.json:/var/lib/grafana/dashboards/gateway.json:ro",
    }
    prometheus = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/rules.yaml"]
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["gateway:8000"]}]
