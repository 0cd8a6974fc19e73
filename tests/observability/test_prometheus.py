"""The dashboard and the alert rules, proven against a real Prometheus scraping proxy-server under a
mixed load (successes, a Bedrock throttle, streams, a response-cache hit, prompt-cache tokens, a
refusal by a key's own limit): every dashboard query and every alert expression is valid and answers
with a series, the figures the load must have moved did move, and `promtool check rules` passes."""

import json
import math
import subprocess

import pytest

from stack import DASHBOARD, RULES, as_bool, dashboard_queries, drive_load, limited_key, tool

# Queries about failures this load does not cause still answer (their counters are exported at 0);
# these must be above 0 after it.
MUST_MOVE = {
    ("Requests by path and status", "{{path}} {{status}}"),
    ("Error ratio by status", "{{status}}"),
    ("Errors by type", "{{type}}"),
    ("Gateway limit refusals vs Bedrock throttling", "throttled by Bedrock"),
    ("Bedrock errors by type", "{{type}}"),
    ("Tokens by model", "{{model}} {{kind}}"),
    ("Prompt cache tokens by model", "{{model}} {{kind}}"),
    ("Tokens by key", "{{key}} {{kind}}"),
    ("Estimated cost by model (USD per hour)", "{{model}}"),
    ("Estimated cost by key (USD per hour)", "{{key}}"),
    ("Response cache lookups", "{{result}}"),
    ("Model catalog age", "seconds since the catalog was read"),
    ("Model catalog refresh failures", "names routed from the catalog"),
}


@pytest.fixture(scope="module")
def loaded(stack):
    """Two rounds of load, each scraped: the first makes every series, the second moves them (a
    counter first seen at its final value has no rate)."""
    key = limited_key(stack)
    rounds = []
    for i in range(2):
        rounds.append(drive_load(stack, i, key))
        stack.wait_scraped()
    return rounds


def values(result):
    return [float(s["value"][1]) for s in result]


def test_the_load_did_what_it_says(loaded):
    first, second = loaded
    # Bedrock's throttle in each round; the limited key's second request.
    assert first["statuses"].count(429) == 1 and second["statuses"].count(429) == 2, loaded
    for r in loaded:
        assert r["statuses"].count(200) == len(r["statuses"]) - r["statuses"].count(429), r
        assert r["cache"][0] == "miss" and r["cache"][-1] == "hit", r


def test_every_dashboard_query_answers_with_a_series(stack, loaded):
    queries = dashboard_queries()
    assert len(queries) >= 25
    empty, unmoved = [], []
    for title, legend, expr in queries:
        result = stack.query(expr)
        if not result:
            empty.append(f"{title} / {legend}: {expr}")
        elif (title, legend) in MUST_MOVE and not any(v > 0 for v in values(result)):
            unmoved.append(f"{title} / {legend}: {result}")
    assert not empty, "queries without a series:\n" + "\n".join(empty)
    assert not unmoved, "queries the load should have moved:\n" + "\n".join(unmoved)


def test_percentiles_are_measured_for_the_load(stack, loaded):
    by_title = {}
    for title, legend, expr in dashboard_queries():
        by_title.setdefault(title, []).append((legend, expr))
    for title in ("Latency by model (p50, p99)", "Time to first token by model (p50, p99)",
                  "Gateway overhead by route (p50, p99)"):
        for legend, expr in by_title[title]:
            finite = [v for v in values(stack.query(expr)) if not math.isnan(v)]
            assert finite, f"{title} / {legend}: no measured percentile"
    # Streams waited 150 ms for their first event and 10 ms between events: their TTFT shows it...
    ttft = stack.query('histogram_quantile(0.5, sum by (le) (rate(gateway_time_to_first_token_seconds_bucket[1m])))')
    assert values(ttft)[0] >= 0.1, ttft
    # ...and the gateway's overhead does not (the waits for Bedrock are excluded).
    overhead = stack.query('sum(rate(gateway_overhead_seconds_sum{stream="true"}[1m])) / sum(rate(gateway_overhead_seconds_count{stream="true"}[1m]))')
    assert 0 < values(overhead)[0] < 0.1, overhead


def test_limit_refusals_and_bedrock_throttling_are_told_apart(stack, loaded):
    refused = {s["metric"]["reason"]: float(s["value"][1]) for s in stack.query("sum by (reason) (increase(gateway_limit_refusals_total[1m]))")}
    assert refused["requests"] > 0 and refused["monthly_budget"] == 0, refused
    throttled = stack.query('sum(increase(gateway_bedrock_errors_total{type="rate_limit_error"}[1m]))')
    assert values(throttled)[0] > 0, throttled


def test_every_alert_expression_is_valid_and_answers(stack, loaded):
    alerts = [r for g in stack.rules() for r in g["rules"] if r["type"] == "alerting"]
    names = {r["name"] for r in alerts}
    assert {"GatewayErrorRatioHigh", "GatewayBedrockThrottling", "GatewayOverheadP99High", "GatewayStoreErrors",
            "GatewayModelCatalogRefreshFailing", "GatewayUsageRecordsDropped"} <= names, names
    for rule in alerts:
        assert rule["health"] == "ok", rule
        stack.query(rule["query"])  # valid as written
        assert stack.query(as_bool(rule["query"])), f"{rule['name']}: no series for `{rule['query']}`"
    # The load's one throttle in about ten message requests is above the throttling alert's 2%: it
    # is pending (or firing); nothing else the load does is alarming.
    state = {r["name"]: r["state"] for r in alerts}
    assert state.pop("GatewayBedrockThrottling") in ("pending", "firing")
    # The debug build on a busy 2-core CI machine may come near the overhead alert's 50 ms: its
    # expression is checked above, its state is not.
    state.pop("GatewayOverheadP99High")
    assert set(state.values()) == {"inactive"}, state


def test_promtool_accepts_the_rules():
    out = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_the_dashboard_uses_one_datasource_and_unique_panel_ids():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 39
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "prometheus", p["title"]
        assert p["targets"] and all(t["datasource"]["uid"] == "prometheus" for t in p["targets"]), p["title"]
