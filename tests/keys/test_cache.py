"""The response cache (CACHE_ENABLED, CACHE_TTL) through proxy-server with the official SDK: an
identical deterministic request of the same key is answered from the store (Bedrock sees it once),
a streaming one is replayed as SSE that the SDK accumulates into the same message, and the
response says which with `x-proxy-cache`."""

import json
import time
import urllib.request
import uuid

import anthropic

# SDK 2.x speaks 2026-10-21, which has no sampling parameters: its requests opt in with the header.
SDK2 = int(anthropic.__version__.split(".")[0]) >= 2
CLAUDE = "claude-sonnet-4-5-20250929"
QWEN = "qwen.qwen3-coder-480b-a35b-v1:0"


def upstream_calls(sim_url, marker):
    with urllib.request.urlopen(f"{sim_url}/_sim/requests", timeout=10) as r:
        return sum(marker in json.dumps(rec.get("body")) for rec in json.load(r))


def deterministic(**body):
    """A request the cache takes: temperature 0 where the API version has it, else the opt-in header."""
    if SDK2:
        return {**body, "extra_headers": {"x-proxy-cache": "on"}}
    return {**body, "temperature": 0}


def plain(message):
    """A message as JSON, without the SDK's own additions to parsed blocks."""
    d = message.model_dump(mode="json", exclude_none=True)
    for b in d.get("content", []):
        b.pop("parsed_output", None)
    return d


def make_client(g, key):
    return anthropic.Anthropic(base_url=g.url, api_key=key, max_retries=0)


def create_raw(c, **kw):
    """The parsed message and the HTTP response (for its headers)."""
    raw = c.messages.with_raw_response.create(**kw)
    return raw.parse(), raw.headers


def stream_raw(c, **kw):
    """The message a stream accumulates to and the HTTP response's headers."""
    with c.messages.stream(**kw) as s:
        return s.get_final_message(), s.response.headers


def until_hit(c, body, seconds=5, stream=False):
    """Repeats a request until the cache answers it (entries are written off the request path):
    the hit and the answers of the misses that came first. Each miss fills the entry too, and the
    fill that lands first stays until it expires, so the hit is the first answer or a miss's."""
    deadline = time.time() + seconds
    misses = []
    while True:
        message, headers = (stream_raw if stream else create_raw)(c, **body)
        if headers["x-proxy-cache"] == "hit":
            return message, misses
        assert headers["x-proxy-cache"] == "miss"
        misses.append(message)
        assert time.time() < deadline, "the response was never cached"
        time.sleep(0.1)


def one_of(message, answers):
    """The message is exactly one of the answers Bedrock gave (ids included)."""
    return plain(message) in [plain(a) for a in answers]


def test_identical_deterministic_requests_are_served_from_the_cache(new_gateway, sim_url):
    g = new_gateway(CACHE_ENABLED="true", CACHE_TTL="60")
    key = g.admin("keys", "create", "--user-id", "u", "--name", "cache", "--json")
    c = make_client(g, key["key"])
    for model in (CLAUDE, QWEN):
        marker = f"cache-{uuid.uuid4().hex[:8]}"
        body = deterministic(model=model, max_tokens=200,
                    messages=[{"role": "user", "content": f"{marker} [sim words=12 tool=get_weather]"}],
                    tools=[{"name": "get_weather", "description": "w",
                            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
        first, h1 = create_raw(c, **body)
        assert h1["x-proxy-cache"] == "miss"
        second, misses = until_hit(c, body)
        assert one_of(second, [first, *misses])
        assert any(b.type == "tool_use" for b in first.content)
        streamed, h = stream_raw(c, **body)
        assert h["x-proxy-cache"] == "hit"
        assert h["content-type"].startswith("text/event-stream")
        assert plain(streamed) == plain(second), "the SSE replay accumulates to the same message"
        assert plain(create_raw(c, **body)[0]) == plain(second), "the entry stays until it expires"
        assert upstream_calls(sim_url, marker) == 1 + len(misses), "Bedrock answered the misses only"


def test_streamed_responses_fill_the_cache_too(new_gateway, sim_url):
    g = new_gateway(CACHE_ENABLED="true")
    key = g.admin("keys", "create", "--user-id", "u", "--name", "cache", "--json")
    c = make_client(g, key["key"])
    marker = f"stream-{uuid.uuid4().hex[:8]}"
    body = deterministic(model=CLAUDE, max_tokens=200,
                messages=[{"role": "user", "content": f"{marker} [sim words=9]"}])
    first, h = stream_raw(c, **body)
    assert h["x-proxy-cache"] == "miss"
    # Only streams ask until the hit, so the entry that answers was filled by a stream.
    hit, misses = until_hit(c, body, stream=True)
    assert one_of(hit, [first, *misses])
    plain_hit, h = create_raw(c, **body)
    assert h["x-proxy-cache"] == "hit"
    assert plain(plain_hit) == plain(hit), "a stream's entry answers a request without stream too"
    assert upstream_calls(sim_url, marker) == 1 + len(misses)


def test_what_is_not_cached(new_gateway, sim_url):
    g = new_gateway(CACHE_ENABLED="true")
    a = g.admin("keys", "create", "--user-id", "u", "--name", "a", "--json")
    b = g.admin("keys", "create", "--user-id", "u", "--name", "b", "--json")
    ca, cb = make_client(g, a["key"]), make_client(g, b["key"])
    marker = f"nocache-{uuid.uuid4().hex[:8]}"
    sampled = dict(model=QWEN, max_tokens=20, messages=[{"role": "user", "content": f"{marker} sampled"}])
    for _ in range(2):
        _, h = create_raw(ca, **sampled)
        assert "x-proxy-cache" not in h, "a sampled request is not cacheable"
    assert upstream_calls(sim_url, marker) == 2

    marker = f"scoped-{uuid.uuid4().hex[:8]}"
    det = deterministic(model=QWEN, max_tokens=20, messages=[{"role": "user", "content": f"{marker}"}])
    assert create_raw(ca, **det)[1]["x-proxy-cache"] == "miss"
    time.sleep(0.5)
    assert create_raw(cb, **det)[1]["x-proxy-cache"] == "miss", "another key does not see this key's entries"
    # The opt-out header; and the opt-in header makes a sampled request cacheable.
    assert "x-proxy-cache" not in create_raw(ca, **{**det, "extra_headers": {"x-proxy-cache": "off"}})[1]
    marker = f"optin-{uuid.uuid4().hex[:8]}"
    opt = dict(model=QWEN, max_tokens=20, messages=[{"role": "user", "content": marker}], extra_headers={"x-proxy-cache": "on"})
    assert create_raw(ca, **opt)[1]["x-proxy-cache"] == "miss"
    until_hit(ca, opt)

    # Errors are not cached.
    marker = f"err-{uuid.uuid4().hex[:8]}"
    bad = deterministic(model=QWEN, max_tokens=20, messages=[{"role": "user", "content": f"{marker} [sim error=throttling]"}])
    for _ in range(2):
        try:
            ca.messages.create(**bad)
            raise AssertionError("the sim was asked for an error")
        except anthropic.RateLimitError:
            pass
    # Each call reaches Bedrock three times: the gateway retries throttling twice (BEDROCK_MAX_RETRIES).
    assert upstream_calls(sim_url, marker) == 2 * 3


def test_cache_hits_count_as_requests_without_tokens(new_gateway):
    g = new_gateway(CACHE_ENABLED="true")
    key = g.admin("keys", "create", "--user-id", "u", "--name", "usage", "--json")
    c = make_client(g, key["key"])
    body = deterministic(model=QWEN, max_tokens=50,
                messages=[{"role": "user", "content": f"usage-{uuid.uuid4().hex[:8]} [sim words=6]"}])
    first, _ = create_raw(c, **body)
    _, misses = until_hit(c, body)
    g.stop()
    rows = g.admin("usage", "--key-id", key["key_id"], "--totals", "--json")
    assert sum(r["requests"] for r in rows) == 1 + len(misses) + 1
    assert sum(r["output_tokens"] for r in rows) == (1 + len(misses)) * first.usage.output_tokens
    assert first.usage.output_tokens == 6
