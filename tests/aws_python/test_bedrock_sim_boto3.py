"""bedrock-sim checked with botocore, AWS's Python SDK: a second, independent implementation of the
AWS wire protocol besides the Rust SDK used in crates/bedrock-sim/tests."""

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError, EventStreamError

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CLAUDE_BARE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
QWEN = "qwen.qwen3-coder-480b-a35b-v1:0"
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather for a city", "inputSchema": {"json": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city", "days"]}}}}]}


def user(text):
    return {"role": "user", "content": [{"text": text}]}


def text_of(message):
    return "".join(b["text"] for b in message["content"] if "text" in b)


@pytest.mark.parametrize("model", [CLAUDE, QWEN])
def test_converse(runtime, recorded, model):
    out = runtime.converse(modelId=model, messages=[user("What is Bedrock?")])
    assert "What is Bedrock?" in text_of(out["output"]["message"])
    assert out["stopReason"] == "end_turn"
    usage = out["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert "latencyMs" in out["metrics"]
    (req,) = recorded()
    assert req["operation"] == "Converse" and req["model_id"] == model
    assert req["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    assert "/bedrock/aws4_request" in req["headers"]["authorization"]
    assert req["body"]["messages"] == [user("What is Bedrock?")]


def test_tool_round_trip_and_thinking_signatures(runtime):
    first = user("Weather in Paris? [sim tool thinking]")
    kwargs = dict(modelId=CLAUDE, toolConfig=TOOLS, inferenceConfig={"maxTokens": 4000}, additionalModelRequestFields=THINKING)
    out = runtime.converse(messages=[first], **kwargs)
    assert out["stopReason"] == "tool_use"
    assistant = out["output"]["message"]
    reasoning = assistant["content"][0]["reasoningContent"]["reasoningText"]
    assert reasoning["text"] and reasoning["signature"]
    tool = next(b["toolUse"] for b in assistant["content"] if "toolUse" in b)
    assert tool["name"] == "get_weather"
    assert isinstance(tool["input"]["city"], str) and isinstance(tool["input"]["days"], int)
    result = {"role": "user", "content": [{"toolResult": {"toolUseId": tool["toolUseId"], "content": [{"text": "18 degrees"}]}}]}
    done = runtime.converse(messages=[first, assistant, result], **kwargs)
    assert "18 degrees" in text_of(done["output"]["message"])

    tampered = json.loads(json.dumps(assistant))
    tampered["content"][0]["reasoningContent"]["reasoningText"]["text"] += " (edited)"
    with pytest.raises(ClientError) as e:
        runtime.converse(messages=[first, tampered, result], **kwargs)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "signature" in e.value.response["Error"]["Message"]


def collect(stream):
    events = []
    for event in stream:
        (name, payload), = event.items()
        events.append((name, payload))
    return events


def test_converse_stream_matches_converse(runtime):
    messages = [user("same words [sim words=30]")]
    whole = runtime.converse(modelId=QWEN, messages=messages)
    events = collect(runtime.converse_stream(modelId=QWEN, messages=messages)["stream"])
    names = [n for n, _ in events]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    assert "contentBlockDelta" in names and "contentBlockStop" in names
    text = "".join(p["delta"]["text"] for n, p in events if n == "contentBlockDelta")
    assert text == text_of(whole["output"]["message"])
    assert events[-1][1]["usage"]["outputTokens"] == whole["usage"]["outputTokens"]


def test_converse_stream_tools_and_reasoning(runtime):
    events = collect(runtime.converse_stream(
        modelId=CLAUDE, messages=[user("Weather? [sim tool thinking]")], toolConfig=TOOLS,
        inferenceConfig={"maxTokens": 4000}, additionalModelRequestFields=THINKING)["stream"])
    starts = [p for n, p in events if n == "contentBlockStart"]
    assert starts and starts[0]["start"]["toolUse"]["name"] == "get_weather"
    deltas = [p["delta"] for n, p in events if n == "contentBlockDelta"]
    tool_json = "".join(d["toolUse"]["input"] for d in deltas if "toolUse" in d)
    assert json.loads(tool_json)["city"]
    assert any("text" in d.get("reasoningContent", {}) for d in deltas)
    assert any("signature" in d.get("reasoningContent", {}) for d in deltas)
    assert [p for n, p in events if n == "messageStop"][0]["stopReason"] == "tool_use"


@pytest.mark.parametrize("kind,code", [("throttling", "throttlingException"), ("model_stream_error", "modelStreamErrorException"),
                                       ("internal", "internalServerException"), ("validation", "validationException")])
def test_in_stream_exceptions(runtime, kind, code):
    stream = runtime.converse_stream(modelId=QWEN, messages=[user(f"x [sim stream_error={kind} after=2]")])["stream"]
    received = []
    with pytest.raises(EventStreamError) as e:
        for event in stream:
            received.append(event)
    assert len(received) == 2
    assert e.value.response["Error"]["Code"] == code
    assert e.value.response["Error"]["Message"]


def native(text, **extra):
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 2000, "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return json.dumps(body)


def test_invoke_model(runtime):
    out = runtime.invoke_model(modelId=CLAUDE, body=native("native hello"), contentType="application/json", accept="application/json")
    msg = json.loads(out["body"].read())
    assert msg["type"] == "message" and msg["id"].startswith("msg_bdrk_")
    assert msg["model"] == "claude-sonnet-4-5-20250929"
    assert "native hello" in msg["content"][0]["text"]
    assert msg["stop_reason"] == "end_turn" and msg["usage"]["input_tokens"] > 0
    headers = out["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) == msg["usage"]["input_tokens"]


@pytest.mark.parametrize("extra,missing", [({"stream": True}, None), ({"model": "claude"}, None), ({}, "anthropic_version")])
def test_invoke_model_rejects_what_bedrock_rejects(runtime, extra, missing):
    body = json.loads(native("x", **extra))
    if missing:
        del body[missing]
    with pytest.raises(ClientError) as e:
        runtime.invoke_model(modelId=CLAUDE, body=json.dumps(body))
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_invoke_model_with_response_stream(runtime):
    out = runtime.invoke_model_with_response_stream(modelId=CLAUDE, body=native("stream me [sim thinking]"))
    events = [json.loads(e["chunk"]["bytes"]) for e in out["body"]]
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert "content_block_start" in types and "content_block_delta" in types and "content_block_stop" in types
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] > 0 and metrics["outputTokenCount"] > 0


def test_count_tokens(runtime):
    messages = [user("count these words please")]
    whole = runtime.converse(modelId=CLAUDE, messages=messages)
    counted = runtime.count_tokens(modelId=CLAUDE_BARE, input={"converse": {"messages": messages}})
    assert counted["inputTokens"] == whole["usage"]["inputTokens"] > 0
    counted = runtime.count_tokens(modelId=CLAUDE_BARE, input={"invokeModel": {"body": native("count me").encode()}})
    assert counted["inputTokens"] > 0
    with pytest.raises(ClientError) as e:
        runtime.count_tokens(modelId=CLAUDE, input={"converse": {"messages": messages}})
    assert "doesn't support counting tokens" in e.value.response["Error"]["Message"]


@pytest.mark.parametrize("kind,code,status", [
    ("validation", "ValidationException", 400), ("access_denied", "AccessDeniedException", 403),
    ("not_found", "ResourceNotFoundException", 404), ("throttling", "ThrottlingException", 429),
    ("quota", "ServiceQuotaExceededException", 400), ("not_ready", "ModelNotReadyException", 429),
    ("timeout", "ModelTimeoutException", 408), ("model_error", "ModelErrorException", 424),
    ("internal", "InternalServerException", 500), ("unavailable", "ServiceUnavailableException", 503)])
def test_http_errors(runtime, kind, code, status):
    with pytest.raises(ClientError) as e:
        runtime.invoke_model(modelId=CLAUDE, body=native(f"x [sim error={kind}]"))
    assert e.value.response["Error"]["Code"] == code
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    # botocore maps modeled errors to the client's exception classes.
    assert isinstance(e.value, getattr(runtime.exceptions, code))


@pytest.mark.parametrize("messages,extra,fragment", [
    ([user("   ")], {}, "is blank"),
    ([user("q"), {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}]},
      {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}]}], {}, "toolConfig field must be defined"),
    ([{"role": "user", "content": [{"text": "a"}] + [{"cachePoint": {"type": "default"}}] * 5}], {}, "A maximum of 4"),
    ([user("a"), user("b")], {}, "alternate"),
])
def test_validation(runtime_unvalidated, messages, extra, fragment):
    with pytest.raises(ClientError) as e:
        runtime_unvalidated.converse(modelId=CLAUDE, messages=messages, **extra)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert fragment in e.value.response["Error"]["Message"]


def test_unknown_fields_are_rejected(runtime_unvalidated):
    """botocore cannot serialise an unknown member, so a hook adds it to the body before signing."""

    def inject(request, **_):
        body = json.loads(request.body)
        body["unknownField"] = 1
        request.data = json.dumps(body).encode()

    events = runtime_unvalidated.meta.events
    events.register("before-sign.bedrock-runtime.Converse", inject, unique_id="inject-unknown")
    try:
        with pytest.raises(ClientError) as e:
            runtime_unvalidated.converse(modelId=CLAUDE, messages=[user("a")])
    finally:
        events.unregister("before-sign.bedrock-runtime.Converse", unique_id="inject-unknown")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "extraneous key [unknownField]" in e.value.response["Error"]["Message"]


def test_missing_auth_is_403(sim_url):
    req = urllib.request.Request(f"{sim_url}/model/{QWEN}/converse", data=json.dumps({"messages": [user("x")]}).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")


def test_control_plane(control):
    anthropic = control.list_foundation_models(byProvider="Anthropic")["modelSummaries"]
    assert anthropic and all(m["modelId"].startswith("anthropic.") for m in anthropic)
    assert all(m["modelArn"].endswith(m["modelId"]) and m["providerName"] == "Anthropic" for m in anthropic)
    everything = control.list_foundation_models()["modelSummaries"]
    assert len(everything) > len(anthropic)

    seen, token, pages = [], None, 0
    while True:
        page = control.list_inference_profiles(maxResults=2, **({"nextToken": token} if token else {}))
        seen += [p["inferenceProfileId"] for p in page["inferenceProfileSummaries"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert pages > 2 and len(seen) == len(set(seen))
    assert CLAUDE in seen
    profile = control.get_inference_profile(inferenceProfileIdentifier=CLAUDE)
    assert profile["inferenceProfileId"] == CLAUDE and profile["status"] == "ACTIVE"
    assert profile["models"][0]["modelArn"].endswith(CLAUDE_BARE)
