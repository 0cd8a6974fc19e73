"""bedrock-sim driven by botocore/boto3, AWS's own Python SDK: if botocore serializes, signs, parses and
raises on what the emulator sends exactly as it does against Bedrock, the emulator speaks the wire.

The expectations come from the crate doc (crates/bedrock-sim/src/lib.rs) and from botocore's service
model, not from the emulator's output."""

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError, EventStreamError

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CLAUDE_BARE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
QWEN = "qwen.qwen3-coder-480b-a35b-v1:0"
THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
ANTHROPIC_VERSION = "bedrock-2023-05-31"

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "units": {"type": "string", "enum": ["metric", "imperial"]},
    },
    "required": ["city", "days"],
}
TOOLS = {
    "tools": [
        {"toolSpec": {"name": "get_weather", "description": "Weather forecast for a city",
                      "inputSchema": {"json": WEATHER_SCHEMA}}},
        {"toolSpec": {"name": "get_time", "description": "Local time in a city",
                      "inputSchema": {"json": {"type": "object", "properties": {"tz": {"type": "string"}},
                                               "required": ["tz"]}}}},
    ]
}
JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list}


def user(*texts):
    return {"role": "user", "content": [{"text": t} for t in texts]}


def text_of(message):
    return "".join(b["text"] for b in message["content"] if "text" in b)


def error_of(excinfo):
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def assert_input_matches_schema(tool_input, schema):
    assert isinstance(tool_input, dict), tool_input
    for name in schema["required"]:
        assert name in tool_input, f"required property {name!r} missing from {tool_input}"
    for name, value in tool_input.items():
        if name in schema["properties"]:
            expected = JSON_TYPES[schema["properties"][name]["type"]]
            assert isinstance(value, expected) and not (expected is int and isinstance(value, bool)), (name, value)
            if "enum" in schema["properties"][name]:
                assert value in schema["properties"][name]["enum"]


def assert_usage(usage):
    assert usage["inputTokens"] > 0
    assert usage["outputTokens"] > 0
    cache = usage.get("cacheReadInputTokens", 0) + usage.get("cacheWriteInputTokens", 0)
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] + cache


def header_map(headers):
    """The recorded headers, lower-cased, whether the emulator records a map or a list of pairs."""
    if isinstance(headers, dict):
        return {k.lower(): v for k, v in headers.items()}
    out = {}
    for item in headers:
        k, v = (item["name"], item["value"]) if isinstance(item, dict) else item
        out[k.lower()] = v
    return out


def events_of(stream):
    """[(event name, payload)] of a botocore EventStream."""
    out = []
    for event in stream:
        assert len(event) == 1, event
        ((name, payload),) = event.items()
        out.append((name, payload))
    return out


def message_from_stream(events):
    """Rebuilds the assistant message a ConverseStream described, the way an SDK user does."""
    blocks = {}
    for name, payload in events:
        if name == "contentBlockStart":
            start = payload["start"]
            if "toolUse" in start:
                blocks[payload["contentBlockIndex"]] = {
                    "toolUse": {"toolUseId": start["toolUse"]["toolUseId"], "name": start["toolUse"]["name"], "input": ""}}
        elif name == "contentBlockDelta":
            i, delta = payload["contentBlockIndex"], payload["delta"]
            if "text" in delta:
                blocks.setdefault(i, {"text": ""})["text"] += delta["text"]
            elif "toolUse" in delta:
                blocks[i]["toolUse"]["input"] += delta["toolUse"]["input"]
            elif "reasoningContent" in delta:
                r = blocks.setdefault(i, {"reasoningContent": {"reasoningText": {"text": ""}}})
                rt = r["reasoningContent"]["reasoningText"]
                rt["text"] += delta["reasoningContent"].get("text", "")
                if "signature" in delta["reasoningContent"]:
                    rt["signature"] = rt.get("signature", "") + delta["reasoningContent"]["signature"]
    content = []
    for i in sorted(blocks):
        block = blocks[i]
        if "toolUse" in block:
            block["toolUse"]["input"] = json.loads(block["toolUse"]["input"] or "{}")
        content.append(block)
    return {"role": "assistant", "content": content}


def native_body(text, **extra):
    body = {"anthropic_version": ANTHROPIC_VERSION, "max_tokens": 512,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    body.update(extra)
    return body


# --------------------------------------------------------------------------------------------------
# Converse


@pytest.mark.parametrize("model", [CLAUDE, QWEN])
def test_converse_default_reply(runtime, model):
    out = runtime.converse(modelId=model, messages=[user("What is the capital of Peru?")])
    message = out["output"]["message"]
    assert message["role"] == "assistant"
    assert "What is the capital of Peru?" in text_of(message)
    assert out["stopReason"] == "end_turn"
    assert_usage(out["usage"])
    assert isinstance(out["metrics"]["latencyMs"], int) and out["metrics"]["latencyMs"] >= 0


def test_converse_marker_is_not_echoed(runtime):
    out = runtime.converse(modelId=QWEN, messages=[user("plain words [sim words=5]")])
    assert "[sim" not in text_of(out["output"]["message"])


def test_converse_bare_claude4_id_needs_inference_profile(runtime):
    with pytest.raises(ClientError) as e:
        runtime.converse(modelId=CLAUDE_BARE, messages=[user("hi")])
    assert error_of(e) == ("ValidationException", 400)


def test_converse_request_is_recorded_as_sent(fresh_runtime, recorded):
    sent = {}

    def capture(request, **_):
        sent["headers"] = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        sent["body"] = json.loads(request.body)
        sent["url"] = request.url

    fresh_runtime.meta.events.register("before-send.bedrock-runtime.Converse", capture)
    kwargs = {"messages": [user("record me")], "inferenceConfig": {"maxTokens": 100, "temperature": 0.5},
              "system": [{"text": "be brief"}]}
    fresh_runtime.converse(modelId=CLAUDE, **kwargs)
    assert "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse" in sent["url"]

    reqs = recorded()
    assert len(reqs) == 1, reqs
    req = reqs[0]
    assert req["operation"] == "Converse"
    assert req["model_id"] == CLAUDE
    assert req["status"] == 200
    headers = header_map(req["headers"])
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    assert "/us-east-1/bedrock/aws4_request" in auth and "SignedHeaders=" in auth and "Signature=" in auth
    assert auth == sent["headers"]["authorization"]
    assert headers["x-amz-date"] == sent["headers"]["x-amz-date"]
    assert req["body"] == sent["body"] == kwargs


def test_converse_tool_use_and_tool_result(runtime):
    first = user("What is the weather in Lima? [sim tool]")
    out = runtime.converse(modelId=CLAUDE, messages=[first], toolConfig=TOOLS)
    assert out["stopReason"] == "tool_use"
    assistant = out["output"]["message"]
    uses = [b["toolUse"] for b in assistant["content"] if "toolUse" in b]
    assert len(uses) == 1
    assert uses[0]["name"] == "get_weather"
    assert uses[0]["toolUseId"]
    assert_input_matches_schema(uses[0]["input"], WEATHER_SCHEMA)

    result = {"role": "user", "content": [{"toolResult": {"toolUseId": uses[0]["toolUseId"],
                                                          "content": [{"json": {"temp_c": 19}}], "status": "success"}}]}
    done = runtime.converse(modelId=CLAUDE, messages=[first, assistant, result], toolConfig=TOOLS)
    assert done["stopReason"] == "end_turn"
    assert text_of(done["output"]["message"]).strip()
    assert not any("toolUse" in b for b in done["output"]["message"]["content"])


def test_converse_named_tool(runtime):
    out = runtime.converse(modelId=QWEN, messages=[user("What time is it? [sim tool=get_time]")], toolConfig=TOOLS)
    (use,) = [b["toolUse"] for b in out["output"]["message"]["content"] if "toolUse" in b]
    assert use["name"] == "get_time"
    assert isinstance(use["input"]["tz"], str)


def test_converse_thinking_signature_round_trip(runtime):
    kwargs = {"modelId": CLAUDE, "inferenceConfig": {"maxTokens": 4096}, "additionalModelRequestFields": THINKING}
    first = user("Think about 2+2. [sim thinking]")
    out = runtime.converse(messages=[first], **kwargs)
    assistant = out["output"]["message"]
    assert "reasoningContent" in assistant["content"][0]
    reasoning = assistant["content"][0]["reasoningContent"]["reasoningText"]
    assert reasoning["text"].strip() and reasoning["signature"]
    assert text_of(assistant).strip()

    follow = user("And 3+3?")
    again = runtime.converse(messages=[first, assistant, follow], **kwargs)
    assert "And 3+3?" in text_of(again["output"]["message"])

    tampered = json.loads(json.dumps(assistant))
    tampered["content"][0]["reasoningContent"]["reasoningText"]["text"] += " Actually, 5."
    with pytest.raises(ClientError) as e:
        runtime.converse(messages=[first, tampered, follow], **kwargs)
    assert error_of(e) == ("ValidationException", 400)


@pytest.mark.parametrize("model_id", [
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/" + CLAUDE,
    "arn:aws:bedrock:us-east-1::foundation-model/" + QWEN,
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
])
def test_converse_model_id_forms(fresh_runtime, recorded, model_id):
    urls = []
    fresh_runtime.meta.events.register("before-send.bedrock-runtime.Converse", lambda request, **_: urls.append(request.url))
    out = fresh_runtime.converse(modelId=model_id, messages=[user("which model?")])
    assert out["stopReason"] == "end_turn"
    if "/" in model_id:
        assert "%2F" in urls[0], "botocore percent-encodes the ARN as one path label"
    (req,) = recorded()
    assert req["model_id"] == model_id


def test_converse_max_tokens_cut(runtime):
    out = runtime.converse(modelId=QWEN, messages=[user("talk a lot [sim words=40]")], inferenceConfig={"maxTokens": 5})
    assert out["stopReason"] == "max_tokens"
    assert len(text_of(out["output"]["message"]).split()) <= 5
    assert 0 < out["usage"]["outputTokens"] <= 5


def test_converse_stop_sequence(runtime):
    out = runtime.converse(
        modelId=CLAUDE, messages=[user("[sim reply='alpha beta HALT gamma delta']")],
        inferenceConfig={"stopSequences": ["HALT"]}, additionalModelResponseFieldPaths=["/stop_sequence"])
    assert out["stopReason"] == "stop_sequence"
    text = text_of(out["output"]["message"])
    assert "HALT" not in text and "gamma" not in text and "alpha beta" in text
    assert out["additionalModelResponseFields"]["stop_sequence"] == "HALT"


def test_converse_reply_and_stop_directives(runtime):
    out = runtime.converse(modelId=QWEN, messages=[user("x [sim reply='fixed answer' stop=content_filtered]")])
    assert text_of(out["output"]["message"]) == "fixed answer"
    assert out["stopReason"] == "content_filtered"


def test_converse_parallel_tool_calls(runtime):
    out = runtime.converse(modelId=CLAUDE, messages=[user("everything at once [sim tools=3]")], toolConfig=TOOLS)
    assert out["stopReason"] == "tool_use"
    uses = [b["toolUse"] for b in out["output"]["message"]["content"] if "toolUse" in b]
    assert [u["name"] for u in uses] == ["get_weather", "get_time", "get_weather"]
    assert len({u["toolUseId"] for u in uses}) == 3


def test_converse_given_tool_input(runtime):
    out = runtime.converse(modelId=CLAUDE, toolConfig=TOOLS,
                           messages=[user("""go [sim tool input='{"city":"Oslo","days":3}']""")])
    (use,) = [b["toolUse"] for b in out["output"]["message"]["content"] if "toolUse" in b]
    assert use["input"] == {"city": "Oslo", "days": 3}


def test_converse_redacted_reasoning(runtime):
    out = runtime.converse(modelId=CLAUDE, messages=[user("secret [sim redacted]")],
                           inferenceConfig={"maxTokens": 4096}, additionalModelRequestFields=THINKING)
    first = out["output"]["message"]["content"][0]
    # a blob: botocore has already base64-decoded it
    assert isinstance(first["reasoningContent"]["redactedContent"], bytes)
    assert first["reasoningContent"]["redactedContent"]


def test_header_directive_and_cache_usage(fresh_runtime, runtime):
    messages = [user("A question long enough to have a good number of input tokens in it, surely.")]
    plain = runtime.converse(modelId=CLAUDE, messages=messages)["usage"]
    fresh_runtime.meta.events.register(
        "before-sign.bedrock-runtime.Converse",
        lambda request, **_: request.headers.__setitem__("x-bedrock-sim", "cache_read=5 cache_write=2"))
    cached = fresh_runtime.converse(modelId=CLAUDE, messages=messages)["usage"]
    assert cached["cacheReadInputTokens"] == 5 and cached["cacheWriteInputTokens"] == 2
    assert cached["inputTokens"] == plain["inputTokens"] - 7
    assert cached["totalTokens"] == cached["inputTokens"] + cached["outputTokens"] + 7


def test_bearer_api_key_is_accepted(sim_url):
    path = "/model/" + urllib.parse.quote(QWEN, safe="") + "/converse"
    request = urllib.request.Request(sim_url + path, method="POST",
                                     data=json.dumps({"messages": [user("bearer hi")]}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer ABSKtest"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200
        assert "bearer hi" in text_of(json.loads(r.read())["output"]["message"])


def test_health(sim_url):
    with urllib.request.urlopen(sim_url + "/_sim/health", timeout=10) as r:
        assert r.status == 200


# --------------------------------------------------------------------------------------------------
# ConverseStream


@pytest.mark.parametrize("model,marker", [(CLAUDE, ""), (QWEN, ""), (QWEN, " [sim words=25]")])
def test_converse_stream_matches_converse(runtime, model, marker):
    messages = [user("Stream this please." + marker)]
    whole = runtime.converse(modelId=model, messages=messages)
    response = runtime.converse_stream(modelId=model, messages=messages)
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
    events = events_of(response["stream"])
    names = [n for n, _ in events]

    assert names[0] == "messageStart" and events[0][1]["role"] == "assistant"
    assert names[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    middle = names[1:-3]
    assert middle and set(middle) == {"contentBlockDelta"}, names

    deltas = [p for n, p in events if n == "contentBlockDelta"]
    assert all(set(d["delta"]) == {"text"} for d in deltas)
    assert {d["contentBlockIndex"] for d in deltas} == {events[-3][1]["contentBlockIndex"]}
    assert "".join(d["delta"]["text"] for d in deltas) == text_of(whole["output"]["message"])
    assert events[-2][1]["stopReason"] == whole["stopReason"] == "end_turn"

    meta = events[-1][1]
    assert_usage(meta["usage"])
    assert "latencyMs" in meta["metrics"]
    assert meta["usage"]["inputTokens"] == whole["usage"]["inputTokens"]
    # "output tokens are one per streamed piece"
    assert meta["usage"]["outputTokens"] == len(deltas) == whole["usage"]["outputTokens"]


def test_converse_stream_tool_use(runtime):
    first = user("Weather in Quito? [sim tool]")
    events = events_of(runtime.converse_stream(modelId=CLAUDE, messages=[first], toolConfig=TOOLS)["stream"])
    names = [n for n, _ in events]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    assert events[-2][1]["stopReason"] == "tool_use"

    starts = [p for n, p in events if n == "contentBlockStart" and "toolUse" in p["start"]]
    assert len(starts) == 1
    index = starts[0]["contentBlockIndex"]
    assert starts[0]["start"]["toolUse"]["name"] == "get_weather"
    assert starts[0]["start"]["toolUse"]["toolUseId"]
    pieces = [p["delta"]["toolUse"]["input"] for n, p in events
              if n == "contentBlockDelta" and p["contentBlockIndex"] == index]
    assert pieces
    assert_input_matches_schema(json.loads("".join(pieces)), WEATHER_SCHEMA)
    # the block is opened before its deltas and closed after them
    positions = [i for i, (n, p) in enumerate(events) if p.get("contentBlockIndex") == index]
    assert names[positions[0]] == "contentBlockStart" and names[positions[-1]] == "contentBlockStop"

    assistant = message_from_stream(events)
    (use,) = [b["toolUse"] for b in assistant["content"] if "toolUse" in b]
    result = {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "sunny"}]}}]}
    done = runtime.converse(modelId=CLAUDE, messages=[first, assistant, result], toolConfig=TOOLS)
    assert done["stopReason"] == "end_turn"


def test_converse_stream_thinking(runtime):
    kwargs = {"modelId": CLAUDE, "inferenceConfig": {"maxTokens": 4096}, "additionalModelRequestFields": THINKING}
    first = user("Think it through. [sim thinking]")
    events = events_of(runtime.converse_stream(messages=[first], **kwargs)["stream"])
    reasoning = [(i, p) for i, (n, p) in enumerate(events)
                 if n == "contentBlockDelta" and "reasoningContent" in p["delta"]]
    assert reasoning
    texts = [p["delta"]["reasoningContent"]["text"] for _, p in reasoning if "text" in p["delta"]["reasoningContent"]]
    sigs = [i for i, p in reasoning if "signature" in p["delta"]["reasoningContent"]]
    assert "".join(texts).strip()
    assert sigs, "no signature delta"
    last_text = max(i for i, p in reasoning if "text" in p["delta"]["reasoningContent"])
    assert min(sigs) > last_text, "the signature must follow the reasoning text"
    text_deltas = [i for i, (n, p) in enumerate(events) if n == "contentBlockDelta" and "text" in p["delta"]]
    assert text_deltas and min(text_deltas) > max(i for i, _ in reasoning), "reasoning comes first"

    # The streamed reasoning, rebuilt, is accepted back as history.
    assistant = message_from_stream(events)
    assert "reasoningContent" in assistant["content"][0]
    again = runtime.converse(messages=[first, assistant, user("next")], **kwargs)
    assert "next" in text_of(again["output"]["message"])


def test_converse_stream_is_incremental(runtime):
    """With delay_ms between events, the first event reaches botocore long before the last one."""
    start = time.monotonic()
    stream = runtime.converse_stream(modelId=QWEN, messages=[user("slowly [sim words=6 delay_ms=150]")])["stream"]
    stamps = [time.monotonic() - start for _ in stream]
    assert len(stamps) >= 9  # messageStart, 6 deltas, stop, messageStop, metadata
    assert stamps[-1] - stamps[0] >= 0.6, stamps


def test_converse_stream_ttfb(runtime):
    """ttfb_ms delays the response, or for a stream its first event (the headers may come earlier)."""
    start = time.monotonic()
    stream = runtime.converse_stream(modelId=QWEN, messages=[user("wait [sim ttfb_ms=400]")])["stream"]
    first = next(iter(stream))
    assert "messageStart" in first
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    runtime.converse(modelId=QWEN, messages=[user("wait [sim ttfb_ms=400]")])
    assert time.monotonic() - start >= 0.4


@pytest.mark.parametrize("kind,code", [
    ("throttling", "throttlingException"),
    ("model_stream_error", "modelStreamErrorException"),
    ("internal", "internalServerException"),
    ("unavailable", "serviceUnavailableException"),
    ("validation", "validationException"),
])
def test_converse_stream_error_frame(runtime, kind, code):
    stream = runtime.converse_stream(modelId=QWEN, messages=[user(f"go [sim words=40 stream_error={kind} after=2]")])
    assert stream["ResponseMetadata"]["HTTPStatusCode"] == 200
    seen = []
    with pytest.raises(EventStreamError) as e:
        for event in stream["stream"]:
            seen.append(event)
    assert e.value.response["Error"]["Code"] == code
    assert e.value.response["Error"]["Message"]
    assert len(seen) == 2 and "messageStart" in seen[0]


def test_converse_stream_error_default_after(runtime):
    stream = runtime.converse_stream(modelId=QWEN, messages=[user("go [sim words=40 stream_error=throttling]")])
    seen = []
    with pytest.raises(EventStreamError) as e:
        for event in stream["stream"]:
            seen.append(event)
    assert e.value.response["Error"]["Code"] == "throttlingException"
    assert len(seen) == 2


# --------------------------------------------------------------------------------------------------
# InvokeModel / InvokeModelWithResponseStream (native Anthropic body)


def invoke(runtime, body, model=CLAUDE):
    out = runtime.invoke_model(modelId=model, body=json.dumps(body).encode(),
                               contentType="application/json", accept="application/json")
    return out, json.loads(out["body"].read())


def test_invoke_model_native_claude(runtime, recorded):
    out, msg = invoke(runtime, native_body("Name three rivers."))
    assert out["contentType"].startswith("application/json")
    assert msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["id"].startswith("msg_bdrk_")
    assert msg["content"][0]["type"] == "text"
    assert "Name three rivers." in msg["content"][0]["text"]
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"]["input_tokens"] > 0 and msg["usage"]["output_tokens"] > 0
    (req,) = recorded()
    assert req["operation"] == "InvokeModel" and req["model_id"] == CLAUDE


def test_invoke_model_max_tokens_cut(runtime):
    _, msg = invoke(runtime, native_body("long please [sim words=50]", max_tokens=5))
    assert msg["stop_reason"] == "max_tokens"
    assert msg["usage"]["output_tokens"] <= 5


@pytest.mark.parametrize("mutation", ["model", "stream", "no_version", "cache_control", "unknown_key"])
def test_invoke_model_rejects_bad_native_body(runtime, mutation):
    body = native_body("hi")
    if mutation == "model":
        body["model"] = "claude-sonnet-4-5-20250929"
    elif mutation == "stream":
        body["stream"] = False
    elif mutation == "no_version":
        del body["anthropic_version"]
    elif mutation == "cache_control":
        body["cache_control"] = {"type": "ephemeral"}
    else:
        body["proxy_private"] = 1
    with pytest.raises(ClientError) as e:
        invoke(runtime, body)
    assert error_of(e) == ("ValidationException", 400)
    assert isinstance(e.value, runtime.exceptions.ValidationException)


def test_invoke_model_with_response_stream(runtime):
    body = native_body("Stream natively. [sim words=12]")
    _, whole = invoke(runtime, body)
    out = runtime.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(body).encode(),
                                                    contentType="application/json", accept="application/json")
    # contentType is required in botocore's output shape and comes from X-Amzn-Bedrock-Content-Type
    assert out["contentType"].startswith("application/json")
    assert out["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
    events = []
    for event in out["body"]:
        assert set(event) == {"chunk"}, event
        events.append(json.loads(event["chunk"]["bytes"]))
    types = [e["type"] for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert types[2:-3] and set(types[2:-3]) == {"content_block_delta"}, types

    start = events[0]["message"]
    assert start["id"].startswith("msg_bdrk_") and start["role"] == "assistant"
    assert events[1]["content_block"]["type"] == "text"
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == whole["content"][0]["text"]
    assert events[-2]["delta"]["stop_reason"] == "end_turn"

    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == start["usage"]["input_tokens"] == whole["usage"]["input_tokens"] > 0
    assert metrics["outputTokenCount"] == events[-2]["usage"]["output_tokens"] == whole["usage"]["output_tokens"] > 0
    assert not any("amazon-bedrock-invocationMetrics" in e for e in events[:-1])


@pytest.mark.parametrize("kind,code", [
    ("throttling", "throttlingException"),
    ("model_stream_error", "modelStreamErrorException"),
    ("timeout", "modelTimeoutException"),
])
def test_invoke_model_with_response_stream_error_frame(runtime, kind, code):
    body = native_body(f"go [sim words=40 stream_error={kind} after=3]")
    out = runtime.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(body).encode(),
                                                    contentType="application/json")
    seen = []
    with pytest.raises(EventStreamError) as e:
        for event in out["body"]:
            seen.append(json.loads(event["chunk"]["bytes"]))
    assert e.value.response["Error"]["Code"] == code
    assert len(seen) == 3 and seen[0]["type"] == "message_start"


# --------------------------------------------------------------------------------------------------
# CountTokens


def test_count_tokens_converse_matches_converse_usage(runtime):
    messages = [user("Count the tokens in this sentence, please."),
                {"role": "assistant", "content": [{"text": "Sure."}]},
                user("Thanks, and these ones too.")]
    counted = runtime.count_tokens(modelId=CLAUDE_BARE, input={"converse": {"messages": messages}})
    assert counted["inputTokens"] > 0
    used = runtime.converse(modelId=CLAUDE, messages=messages)["usage"]
    assert used.get("cacheReadInputTokens", 0) == used.get("cacheWriteInputTokens", 0) == 0
    assert counted["inputTokens"] == used["inputTokens"]


def test_count_tokens_grows_with_input(runtime):
    short = runtime.count_tokens(modelId=CLAUDE_BARE, input={"converse": {"messages": [user("hi")]}})
    long = runtime.count_tokens(modelId=CLAUDE_BARE, input={"converse": {"messages": [user("hi " * 400)]}})
    assert long["inputTokens"] > short["inputTokens"] > 0


def test_count_tokens_invoke_model_body(runtime, recorded):
    body = native_body("How many tokens is this native body?", system="You count.")
    raw = json.dumps(body).encode()
    counted = runtime.count_tokens(modelId=CLAUDE_BARE, input={"invokeModel": {"body": raw}})
    assert counted["inputTokens"] > 0
    _, msg = invoke(runtime, body)
    assert counted["inputTokens"] == msg["usage"]["input_tokens"]
    # on the wire the body is base64 (a blob in a JSON document)
    req = recorded()[0]
    assert req["operation"] == "CountTokens" and req["model_id"] == CLAUDE_BARE
    assert base64.b64decode(req["body"]["input"]["invokeModel"]["body"]) == raw


def test_count_tokens_rejects_inference_profile(runtime):
    with pytest.raises(ClientError) as e:
        runtime.count_tokens(modelId=CLAUDE, input={"converse": {"messages": [user("hi")]}})
    assert error_of(e) == ("ValidationException", 400)


# --------------------------------------------------------------------------------------------------
# Errors

ERRORS = [
    ("validation", "ValidationException", 400),
    ("access_denied", "AccessDeniedException", 403),
    ("not_found", "ResourceNotFoundException", 404),
    ("throttling", "ThrottlingException", 429),
    ("quota", "ServiceQuotaExceededException", 400),
    ("not_ready", "ModelNotReadyException", 429),
    ("timeout", "ModelTimeoutException", 408),
    ("model_error", "ModelErrorException", 424),
    ("internal", "InternalServerException", 500),
    ("unavailable", "ServiceUnavailableException", 503),
]


def assert_aws_error(runtime, excinfo, code, status):
    assert error_of(excinfo) == (code, status)
    assert isinstance(excinfo.value, getattr(runtime.exceptions, code))
    response = excinfo.value.response
    assert response["Error"]["Message"]
    assert response["ResponseMetadata"]["RequestId"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"].split(":")[0] == code


@pytest.mark.parametrize("kind,code,status", ERRORS)
def test_converse_error_kinds(runtime, recorded, kind, code, status):
    with pytest.raises(ClientError) as e:
        runtime.converse(modelId=QWEN, messages=[user(f"fail please [sim error={kind}]")])
    assert_aws_error(runtime, e, code, status)
    (req,) = recorded()
    assert req["status"] == status


@pytest.mark.parametrize("kind,code,status", ERRORS)
def test_invoke_model_error_kinds(runtime, kind, code, status):
    with pytest.raises(ClientError) as e:
        invoke(runtime, native_body(f"fail please [sim error={kind}]"))
    assert_aws_error(runtime, e, code, status)


@pytest.mark.parametrize("kind,code,status", [("throttling", "ThrottlingException", 429),
                                              ("internal", "InternalServerException", 500)])
def test_converse_stream_error_before_stream(runtime, kind, code, status):
    with pytest.raises(ClientError) as e:
        runtime.converse_stream(modelId=QWEN, messages=[user(f"fail [sim error={kind}]")])
    assert_aws_error(runtime, e, code, status)


# --------------------------------------------------------------------------------------------------
# Validation


def cache_point():
    return {"cachePoint": {"type": "default"}}


def tool_history(tool_use_id="tooluse_abc123"):
    return [user("weather?"),
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": tool_use_id, "name": "get_weather",
                                                           "input": {"city": "Lima", "days": 1}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": tool_use_id, "content": [{"text": "19C"}]}}]}]


def cache_request(n):
    system = [{"text": "You are helpful."}, cache_point()]
    content = []
    for i in range(n - 1):
        content += [{"text": f"part {i}"}, cache_point()]
    content.append({"text": "question"})
    return {"system": system, "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize("case", [
    "blank_text", "empty_text", "tool_use_without_tool_config", "five_cache_points",
    "starts_with_assistant", "not_alternating", "tool_result_answers_nothing",
    "two_union_members", "max_tokens_zero",
])
def test_converse_validation(runtime_unvalidated, case):
    kwargs = {"modelId": CLAUDE, "messages": [user("hi")]}
    if case == "blank_text":
        kwargs["messages"] = [user("   ")]
    elif case == "empty_text":
        kwargs["messages"] = [user("")]
    elif case == "tool_use_without_tool_config":
        kwargs["messages"] = tool_history()
    elif case == "five_cache_points":
        kwargs.update(cache_request(5))
    elif case == "starts_with_assistant":
        kwargs["messages"] = [{"role": "assistant", "content": [{"text": "hello"}]}, user("hi")]
    elif case == "not_alternating":
        kwargs["messages"] = [user("one"), user("two")]
    elif case == "tool_result_answers_nothing":
        history = tool_history()
        history[2]["content"][0]["toolResult"]["toolUseId"] = "tooluse_other"
        kwargs.update(messages=history, toolConfig=TOOLS)
    elif case == "two_union_members":
        kwargs["messages"] = [{"role": "user", "content": [{"text": "a", "cachePoint": {"type": "default"}}]}]
    elif case == "max_tokens_zero":
        kwargs["inferenceConfig"] = {"maxTokens": 0}
    with pytest.raises(ClientError) as e:
        runtime_unvalidated.converse(**kwargs)
    assert error_of(e) == ("ValidationException", 400)
    assert e.value.response["Error"]["Message"]


def test_converse_valid_counterparts_are_accepted(runtime):
    """The positive controls of the validation cases: four cache points, and a tool history with its toolConfig."""
    out = runtime.converse(modelId=CLAUDE, **cache_request(4))
    assert out["stopReason"] == "end_turn"
    out = runtime.converse(modelId=CLAUDE, messages=tool_history(), toolConfig=TOOLS)
    assert out["stopReason"] == "end_turn"


def edit_body_before_signing(client, edit):
    """botocore's serializer cannot express members its model lacks (it raises KeyError even with
    parameter_validation=False), so those are put into the JSON body before the request is signed."""
    def hook(request, **_):
        body = json.loads(request.body)
        edit(body)
        request.data = json.dumps(body).encode()
        request.headers["Content-Length"] = str(len(request.data))

    client.meta.events.register("before-sign.bedrock-runtime.Converse", hook)


def test_converse_unknown_top_level_field(fresh_runtime, recorded):
    edit_body_before_signing(fresh_runtime, lambda body: body.update(notAConverseField=True))
    with pytest.raises(ClientError) as e:
        fresh_runtime.converse(modelId=CLAUDE, messages=[user("hi")])
    assert error_of(e) == ("ValidationException", 400)
    (req,) = recorded()
    assert req["status"] == 400 and req["body"]["notAConverseField"] is True


def test_converse_cache_point_in_tool_result(fresh_runtime):
    def add_cache_point(body):
        body["messages"][2]["content"][0]["toolResult"]["content"].append(cache_point())

    edit_body_before_signing(fresh_runtime, add_cache_point)
    with pytest.raises(ClientError) as e:
        fresh_runtime.converse(modelId=CLAUDE, messages=tool_history(), toolConfig=TOOLS)
    assert error_of(e) == ("ValidationException", 400)


def test_body_edit_hook_alone_is_harmless(fresh_runtime):
    """Control for the two tests above: the hook itself does not make a request invalid."""
    edit_body_before_signing(fresh_runtime, lambda body: None)
    assert fresh_runtime.converse(modelId=CLAUDE, messages=[user("hi")])["stopReason"] == "end_turn"


def test_missing_authentication_is_403(sim_url):
    path = "/model/" + urllib.parse.quote(QWEN, safe="") + "/converse"
    request = urllib.request.Request(sim_url + path, method="POST",
                                     data=json.dumps({"messages": [user("hi")]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=10)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-ErrorType"].split(":")[0] == "MissingAuthenticationTokenException"
    assert json.loads(e.value.read())["message"]


# --------------------------------------------------------------------------------------------------
# Control plane


def test_list_foundation_models(control):
    everything = control.list_foundation_models()["modelSummaries"]
    assert everything
    for summary in everything:
        assert summary["modelArn"] and summary["modelId"] and summary["providerName"]
        assert summary["modelArn"].startswith("arn:aws:bedrock:")
        assert summary["modelArn"].endswith("foundation-model/" + summary["modelId"])
    ids = [s["modelId"] for s in everything]
    assert len(ids) == len(set(ids))

    anthropic = control.list_foundation_models(byProvider="Anthropic")["modelSummaries"]
    assert anthropic
    assert all(s["modelId"].startswith("anthropic.") for s in anthropic)
    assert all(s["providerName"] == "Anthropic" for s in anthropic)
    assert CLAUDE_BARE in {s["modelId"] for s in anthropic}
    assert {s["modelId"] for s in anthropic} == {s["modelId"] for s in everything if s["providerName"] == "Anthropic"}
    assert len(anthropic) < len(everything), "the filter must leave out the other providers"


def test_get_foundation_model(control):
    details = control.get_foundation_model(modelIdentifier=CLAUDE_BARE)["modelDetails"]
    assert details["modelId"] == CLAUDE_BARE and details["providerName"] == "Anthropic"


def test_list_inference_profiles_paginates(control):
    seen, pages, token = [], 0, None
    while True:
        kwargs = {"maxResults": 2}
        if token:
            kwargs["nextToken"] = token
        page = control.list_inference_profiles(**kwargs)
        pages += 1
        assert len(page["inferenceProfileSummaries"]) <= 2
        seen += [p["inferenceProfileId"] for p in page["inferenceProfileSummaries"]]
        token = page.get("nextToken")
        if not token:
            break
        assert pages < 1000, "pagination never ends"
    assert pages > 1
    assert len(seen) == len(set(seen)), "duplicates across pages"
    assert CLAUDE in seen

    whole = control.list_inference_profiles(maxResults=1000)
    assert "nextToken" not in whole or not whole["nextToken"]
    assert sorted(p["inferenceProfileId"] for p in whole["inferenceProfileSummaries"]) == sorted(seen)

    paged = [p["inferenceProfileId"] for page in control.get_paginator("list_inference_profiles")
             .paginate(PaginationConfig={"PageSize": 3}) for p in page["inferenceProfileSummaries"]]
    assert sorted(paged) == sorted(seen)


def test_get_inference_profile(control):
    summaries = control.list_inference_profiles(maxResults=1000)["inferenceProfileSummaries"]
    listed = next(p for p in summaries if p["inferenceProfileId"] == CLAUDE)
    got = control.get_inference_profile(inferenceProfileIdentifier=CLAUDE)
    assert got["inferenceProfileId"] == CLAUDE
    assert got["inferenceProfileArn"].endswith(":inference-profile/" + CLAUDE)
    assert got["status"] == "ACTIVE" and got["type"] == "SYSTEM_DEFINED"
    assert got["models"] and all(CLAUDE_BARE in m["modelArn"] for m in got["models"])
    for key in ("inferenceProfileName", "inferenceProfileArn", "models", "status", "type"):
        assert got[key] == listed[key], key


def test_list_foundation_models_other_filters(control):
    everything = control.list_foundation_models()["modelSummaries"]
    text = control.list_foundation_models(byOutputModality="TEXT")["modelSummaries"]
    assert text and all("TEXT" in s["outputModalities"] for s in text)
    assert {s["modelId"] for s in text} == {s["modelId"] for s in everything if "TEXT" in s.get("outputModalities", [])}
    on_demand = control.list_foundation_models(byInferenceType="ON_DEMAND")["modelSummaries"]
    assert all("ON_DEMAND" in s["inferenceTypesSupported"] for s in on_demand)


def test_list_inference_profiles_type_filter(control):
    system = control.list_inference_profiles(maxResults=1000, typeEquals="SYSTEM_DEFINED")["inferenceProfileSummaries"]
    assert system and all(p["type"] == "SYSTEM_DEFINED" for p in system)
    for p in system:
        assert p["status"] == "ACTIVE" and p["models"]
        assert p["inferenceProfileArn"].endswith(":inference-profile/" + p["inferenceProfileId"])


# --------------------------------------------------------------------------------------------------
# Stream progress in the recording (`stream.events_sent`, `stream.state`)


def wait_for_stream_state(recorded, state, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        (req,) = recorded()
        if (req.get("stream") or {}).get("state") == state or time.monotonic() > deadline:
            return req
        time.sleep(0.05)


def test_recorded_stream_completed(runtime, recorded):
    events = events_of(runtime.converse_stream(modelId=QWEN, messages=[user("count me [sim words=7]")])["stream"])
    req = wait_for_stream_state(recorded, "completed")
    assert req["operation"] == "ConverseStream" and req["status"] == 200
    assert req["stream"] == {"events_sent": len(events), "state": "completed"}


def test_recorded_native_stream_completed(runtime, recorded):
    out = runtime.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(native_body("n [sim words=4]")).encode(),
                                                    contentType="application/json")
    n = sum(1 for _ in out["body"])
    req = wait_for_stream_state(recorded, "completed")
    assert req["operation"] == "InvokeModelWithResponseStream"
    assert req["stream"] == {"events_sent": n, "state": "completed"}


def test_recorded_stream_failed(runtime, recorded):
    stream = runtime.converse_stream(modelId=QWEN, messages=[user("x [sim words=20 stream_error=throttling after=2]")])
    with pytest.raises(EventStreamError):
        for _ in stream["stream"]:
            pass
    req = wait_for_stream_state(recorded, "failed")
    assert req["stream"]["state"] == "failed"
    assert req["stream"]["events_sent"] in (2, 3)  # the two events, and perhaps the exception frame


def test_recorded_stream_cancelled(runtime, recorded):
    stream = runtime.converse_stream(modelId=QWEN, messages=[user("long [sim words=300 delay_ms=10]")])["stream"]
    it = iter(stream)
    next(it), next(it)
    stream.close()  # the client goes away mid-stream
    req = wait_for_stream_state(recorded, "cancelled")
    assert req["stream"]["state"] == "cancelled"
    assert 2 <= req["stream"]["events_sent"] < 300
