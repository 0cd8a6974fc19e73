"""proxy-server driven by the official Anthropic Python SDK (run in both generations' venvs), in front
of bedrock-sim. Each test asserts on what the SDK returned and on what Bedrock (the emulator) got."""

import base64
import http.client
import json
import urllib.parse

import anthropic
import pytest

# Which generation this venv holds (0.x: x-api-key + 2023-06-01; 2.x: Bearer + 2026-10-21).
SDK0 = anthropic.__version__.startswith("0.")

CLAUDE = "claude-sonnet-4-5-20250929"
CLAUDE_PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
QWEN = "qwen.qwen3-coder-480b-a35b-v1:0"
MODELS = [CLAUDE, QWEN]  # native route, Converse route
TOOLS = [{"name": "get_weather", "description": "Weather for a city", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"name": "get_time", "description": "Time in a zone", "input_schema": {
        "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}]
THINKING = {"type": "enabled", "budget_tokens": 1024}
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n").decode()


def text(message):
    return "".join(b.text for b in message.content if b.type == "text")


def ops(received):
    return [r["operation"] for r in received]


def test_auth_style_and_version_of_this_sdk_generation(client, sim):
    msg = client.messages.create(model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "hello"}])
    assert "hello" in text(msg)
    assert msg.model == CLAUDE
    assert msg._request_id and msg._request_id.startswith("req_")
    (req,) = sim()
    assert req["operation"] == "InvokeModel" and req["model_id"] == CLAUDE_PROFILE
    assert req["body"]["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in req["body"] and "stream" not in req["body"]


@pytest.mark.parametrize("model", MODELS)
def test_text_and_stream_agree(client, sim, model):
    messages = [{"role": "user", "content": "tell me [sim words=40]"}]
    whole = client.messages.create(model=model, max_tokens=200, messages=messages)
    with client.messages.stream(model=model, max_tokens=200, messages=messages) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) >= 40
    assert "".join(pieces) == text(whole) == text(final)
    assert final.usage.output_tokens == whole.usage.output_tokens > 0
    assert final.usage.input_tokens == whole.usage.input_tokens > 0
    assert final.model == whole.model == model
    expected = ["InvokeModel", "InvokeModelWithResponseStream"] if model == CLAUDE else ["Converse", "ConverseStream"]
    assert ops(sim()) == expected


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("streaming", [False, True])
def test_tool_round_trip(client, sim, model, streaming):
    first = {"role": "user", "content": "Weather in Paris and time in Rome? [sim tool tools=2]"}
    kwargs = dict(model=model, max_tokens=500, tools=TOOLS)
    if streaming:
        with client.messages.stream(messages=[first], **kwargs) as stream:
            msg = stream.get_final_message()
    else:
        msg = client.messages.create(messages=[first], **kwargs)
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"], "two parallel calls"
    assert isinstance(uses[0].input["city"], str) and isinstance(uses[1].input["tz"], str)
    results = {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": uses[0].id, "content": "18C and sunny"},
        {"type": "tool_result", "tool_use_id": uses[1].id, "is_error": True,
         "content": [{"type": "text", "text": "unknown zone"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}
    done = client.messages.create(messages=[first, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]}, results], **kwargs)
    assert "18C and sunny" in text(done) and "unknown zone" in text(done)
    last = sim()[-1]["body"]
    if model == CLAUDE:
        assert last["messages"][2]["content"][1]["is_error"] is True
    else:
        assert last["messages"][2]["content"][1]["toolResult"]["status"] == "error"
        assert last["messages"][2]["content"][1]["toolResult"]["content"][1]["image"]["format"] == "png"


@pytest.mark.parametrize("choice,expected", [
    ({"type": "auto"}, {"auto": {}}), ({"type": "any", "disable_parallel_tool_use": True}, {"any": {}}),
    ({"type": "tool", "name": "get_time"}, {"tool": {"name": "get_time"}}), ({"type": "none"}, None)])
def test_tool_choice_reaches_converse(client, sim, choice, expected):
    client.messages.create(model="claude-converse", max_tokens=100, tools=TOOLS, tool_choice=choice,
                           messages=[{"role": "user", "content": "hi"}])
    (req,) = sim()
    assert req["operation"] == "Converse" and req["model_id"] == CLAUDE_PROFILE
    if expected is None:
        assert "toolConfig" not in req["body"]
    else:
        assert req["body"]["toolConfig"]["toolChoice"] == expected


def test_qwen_takes_auto_tool_choice_only(client, sim):
    client.messages.create(model="coder", max_tokens=100, tools=TOOLS, tool_choice={"type": "any"},
                           messages=[{"role": "user", "content": "hi"}])
    (req,) = sim()
    assert req["model_id"] == QWEN, "the configured alias routes to Converse"
    assert "toolChoice" not in req["body"]["toolConfig"]


def test_tool_choice_on_native_route_is_forwarded(client, sim):
    client.messages.create(model=CLAUDE, max_tokens=100, tools=TOOLS, tool_choice={"type": "tool", "name": "get_time"},
                           messages=[{"role": "user", "content": "hi"}])
    assert sim()[0]["body"]["tool_choice"] == {"type": "tool", "name": "get_time"}


@pytest.mark.parametrize("model", MODELS)
def test_images_and_pdf_documents(client, sim, model):
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}, "title": "Q3 report.pdf"},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "text", "text": "Summarise both."}]
    msg = client.messages.create(model=model, max_tokens=100, messages=[{"role": "user", "content": content}])
    assert "Summarise both." in text(msg)
    body = sim()[0]["body"]
    if model == QWEN:
        blocks = body["messages"][0]["content"]
        assert blocks[0]["image"]["format"] == "png"
        assert base64.b64decode(blocks[0]["image"]["source"]["bytes"]) == base64.b64decode(PNG)
        assert blocks[1]["document"]["name"] != blocks[2]["document"]["name"]
        assert blocks[1]["document"]["format"] == "pdf"


@pytest.mark.parametrize("model", [CLAUDE, "claude-converse"])
def test_thinking_signatures_survive_the_round_trip(client, sim, model):
    first = {"role": "user", "content": "Weather? [sim thinking tool]"}
    kwargs = dict(model=model, max_tokens=4000, thinking=THINKING, tools=TOOLS)
    with client.messages.stream(messages=[first], **kwargs) as stream:
        msg = stream.get_final_message()
    thinking = msg.content[0]
    assert thinking.type == "thinking" and thinking.signature and thinking.thinking
    use = next(b for b in msg.content if b.type == "tool_use")
    follow = [first, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}]
    done = client.messages.create(messages=follow, **kwargs)
    assert "sunny" in text(done)
    sent = sim()[-1]["body"]["messages"][1]["content"][0]
    if model == CLAUDE:
        assert sent["signature"] == thinking.signature and sent["thinking"] == thinking.thinking
    else:
        assert sent["reasoningContent"]["reasoningText"] == {"text": thinking.thinking, "signature": thinking.signature}


def test_thinking_is_dropped_for_qwen(client, sim):
    msg = client.messages.create(model=QWEN, max_tokens=4000, thinking=THINKING, tools=TOOLS,
                                 messages=[{"role": "user", "content": "Weather? [sim tool]"}])
    assert "additionalModelRequestFields" not in sim()[0]["body"], "no known thinking switch for Qwen"
    assert any(b.type == "tool_use" for b in msg.content)


def test_prompt_caching_usage_and_cache_points(client, sim):
    system = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    msg = client.messages.create(model="coder", max_tokens=50, system=system,
                                 messages=[{"role": "user", "content": "x [sim cache_read=5 cache_write=7]"}])
    assert msg.usage.cache_read_input_tokens == 5 and msg.usage.cache_creation_input_tokens == 7
    assert sim()[0]["body"]["system"] == [{"text": "You are terse."}]  # Qwen: no cache points
    msg = client.messages.create(model=CLAUDE, max_tokens=50, system=system,
                                 messages=[{"role": "user", "content": "x [sim cache_read=5 cache_write=7]"}])
    assert msg.usage.cache_read_input_tokens == 5 and msg.usage.cache_creation_input_tokens == 7
    assert sim()[-1]["body"]["system"][0]["cache_control"] == {"type": "ephemeral"}


ERRORS = [
    ("validation", 400, "invalid_request_error"), ("access_denied", 403, "permission_error"),
    ("not_found", 404, "not_found_error"), ("throttling", 429, "rate_limit_error"),
    ("quota", 429, "rate_limit_error"), ("not_ready", 529, "overloaded_error"),
    ("timeout", 504, "timeout_error"), ("model_error", 500, "api_error"),
    ("internal", 500, "api_error"), ("unavailable", 529, "overloaded_error")]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind,status,etype", ERRORS)
def test_bedrock_errors_map_to_anthropic_errors(client, model, kind, status, etype):
    with pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model=model, max_tokens=50, messages=[{"role": "user", "content": f"x [sim error={kind}]"}])
    err = e.value
    assert err.status_code == status
    assert err.body["type"] == "error" and err.body["error"]["type"] == etype
    assert err.body["request_id"] == err.response.headers["request-id"]
    if status in (429, 529):
        assert err.response.headers["retry-after"]
    if status == 429:
        assert isinstance(err, anthropic.RateLimitError)
    if status == 529:
        assert isinstance(err, anthropic.OverloadedError) or SDK0


@pytest.mark.parametrize("model", MODELS)
def test_stream_failure_after_start_is_an_sse_error(client, model):
    with pytest.raises(anthropic.APIStatusError) as e:
        with client.messages.stream(model=model, max_tokens=50,
                                    messages=[{"role": "user", "content": "x [sim stream_error=throttling after=3]"}]) as stream:
            for _ in stream:
                pass
    assert "rate_limit_error" in str(e.value.body) or "rate_limit_error" in str(e.value)


def test_unknown_model_and_bad_requests(client, sim):
    sim()  # reset
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-opus-9-9", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert [r.get("model_id") for r in sim()] == ["us.anthropic.claude-opus-9-9"], \
        "a claude-* name found nowhere goes to Bedrock as itself, whose refusal is the answer"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}}]}])
    assert e.value.body["error"]["message"].startswith("messages.0.content.0.source.media_type")


def raw(proxy_url, method, path, body=None, headers=None):
    u = urllib.parse.urlparse(proxy_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    conn.request(method, path, body=data, headers={"content-type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), payload


def test_both_auth_headers_and_wrong_keys(proxy_url, master_key):
    body = {"model": CLAUDE, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    for headers in ({"x-api-key": master_key}, {"authorization": f"Bearer {master_key}"}):
        for version in ("2023-06-01", "2026-10-21"):
            status, h, _ = raw(proxy_url, "POST", "/v1/messages", body, {**headers, "anthropic-version": version})
            assert status == 200 and h["request-id"].startswith("req_")
    status, h, payload = raw(proxy_url, "POST", "/v1/messages", body, {"x-api-key": "sk-wrong"})
    assert status == 401 and json.loads(payload)["error"]["type"] == "authentication_error"
    assert json.loads(payload)["request_id"] == h["request-id"]
    status, _, payload = raw(proxy_url, "POST", "/v1/messages", {**body, "temperature": 0.5},
                             {"x-api-key": master_key, "anthropic-version": "2026-10-21"})
    assert status == 400 and "temperature" in json.loads(payload)["error"]["message"]


def test_malformed_json_and_oversized_bodies(proxy_url, master_key):
    status, _, payload = raw(proxy_url, "POST", "/v1/messages", b"{\"model\": ", {"x-api-key": master_key})
    assert status == 400 and json.loads(payload)["error"]["type"] == "invalid_request_error"
    u = urllib.parse.urlparse(proxy_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("POST", "/v1/messages")
    conn.putheader("x-api-key", master_key)
    conn.putheader("content-length", str(40 * 1024 * 1024))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"]["type"] == "request_too_large"


def test_beta_query_string(client, sim):
    msg = client.beta.messages.create(model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "beta path"}],
                                      betas=["interleaved-thinking-2025-05-14", "claude-code-20250219"])
    assert "beta path" in "".join(b.text for b in msg.content if b.type == "text")
    body = sim()[0]["body"]
    assert body["anthropic_beta"] == ["interleaved-thinking-2025-05-14"], "unknown betas are filtered out"


def test_models_list_retrieve_and_pagination(client):
    models = list(client.models.list(limit=3))
    ids = [m.id for m in models]
    assert len(ids) > 6 and len(set(ids)) == len(ids)
    assert ids[0] == "coder", "configured aliases first"
    assert CLAUDE in ids
    page = client.models.list(limit=2)
    assert page.has_more and len(page.data) == 2 and page.last_id == page.data[-1].id
    m = client.models.retrieve(CLAUDE)
    assert m.id == CLAUDE and m.display_name == "Claude Sonnet 4.5" and m.type == "model"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope-1")


def test_count_tokens(client, sim):
    messages = [{"role": "user", "content": "count these words please"}]
    counted = client.messages.count_tokens(model=CLAUDE, messages=messages)
    created = client.messages.create(model=CLAUDE, max_tokens=5, messages=messages)
    assert counted.input_tokens == created.usage.input_tokens > 0
    received = sim()
    assert received[0]["operation"] == "CountTokens"
    assert received[0]["model_id"] == "anthropic.claude-sonnet-4-5-20250929-v1:0", "CountTokens takes the bare id"
    estimated = client.messages.with_raw_response.count_tokens(model=QWEN, messages=messages)
    assert estimated.headers["x-gateway-token-count"] == "estimate"
    assert estimated.parse().input_tokens > 0


def test_health_ready_metrics_and_head(proxy_url, client):
    client.messages.create(model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "count me"}])
    assert raw(proxy_url, "GET", "/health")[0] == 200
    assert raw(proxy_url, "GET", "/ready")[0] == 200
    assert raw(proxy_url, "HEAD", "/")[0] == 200
    status, _, metrics = raw(proxy_url, "GET", "/metrics")
    text_ = metrics.decode()
    assert status == 200
    for name in ("gateway_requests_total", "gateway_request_duration_seconds", "gateway_bedrock_duration_seconds",
                 "gateway_tokens_total", "gateway_errors_total"):
        assert name in text_
    assert f'gateway_tokens_total{{kind="output",model="{CLAUDE}"}}' in text_


def test_models_come_from_bedrocks_catalog_without_per_request_calls(client, sim):
    import time

    deadline = time.time() + 10
    while True:
        ids = [m.id for m in client.models.list(limit=1000)]
        if QWEN in ids or time.time() > deadline:
            break
        time.sleep(0.2)
    assert QWEN in ids, "Bedrock's other models are listed by their ids once the catalog is read"
    assert CLAUDE in ids and "claude-sonnet-4-5" in ids, "Claude models by their Anthropic names and aliases"
    assert CLAUDE_PROFILE not in ids, "no inference profile ids"
    assert "anthropic.claude-sonnet-4-5-20250929-v1:0" not in ids, "no Bedrock ids for Claude models"
    sim()  # reset
    for _ in range(5):
        client.models.list()
    assert [r["operation"] for r in sim()] == [], "no control-plane call per request"
    assert client.models.retrieve("claude-sonnet-4-5").display_name == "Claude Sonnet 4.5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve(CLAUDE_PROFILE)
