"""Keys made with proxy-admin, used through proxy-server with the official SDK: they work, their
revocation takes effect within 10 s, their limits answer 429 with retry-after, and every served
request's usage (streamed or not) is in the store with exact token counts, also after SIGTERM."""

import time

import anthropic
import pytest

CLAUDE = "claude-sonnet-4-5-20250929"
QWEN = "qwen.qwen3-coder-480b-a35b-v1:0"


def client(gateway, key):
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


def create(gateway, *extra):
    return gateway.admin("keys", "create", "--user-id", "alice", "--name", "test", *extra, "--json")


def totals(gateway, key_id):
    rows = gateway.admin("usage", "--key-id", key_id, "--totals", "--json")
    out = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    for r in rows:
        for k in out:
            out[k] += r[k]
    return out


def wait_for_usage(gateway, key_id, requests, seconds=5):
    deadline = time.time() + seconds
    while True:
        t = totals(gateway, key_id)
        if t["requests"] >= requests or time.time() > deadline:
            return t
        time.sleep(0.1)


def test_a_created_key_works_and_no_master_key_is_needed(gateway):
    key = create(gateway)
    msg = client(gateway, key["key"]).messages.create(model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert "hi" in msg.content[0].text
    with pytest.raises(anthropic.AuthenticationError):
        client(gateway, key["key"][:-1] + ("A" if key["key"][-1] != "A" else "B")).messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    listed = gateway.admin("keys", "list", "--json")
    assert key["key"] not in str(listed)


def test_a_revoked_key_gets_401_within_10_seconds(gateway):
    key = create(gateway)
    c = client(gateway, key["key"])
    c.messages.create(model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    gateway.admin("keys", "revoke", key["key_id"])
    revoked_at = time.time()
    while True:
        try:
            c.messages.create(model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}])
        except anthropic.AuthenticationError as e:
            assert e.body["error"]["type"] == "authentication_error"
            break
        assert time.time() - revoked_at < 10, "revoked key still accepted after 10 s"
        time.sleep(0.25)


def test_a_key_limited_to_3_requests_gets_429_on_the_4th(gateway):
    key = create(gateway, "--rate-limit-requests", "3", "--rate-limit-window", "60")
    c = client(gateway, key["key"])
    for remaining in (2, 1, 0):
        raw = c.messages.with_raw_response.create(model=QWEN, max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "3"
        assert raw.headers["anthropic-ratelimit-requests-remaining"] == str(remaining)
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model=QWEN, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    retry_after = int(e.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 20, retry_after
    assert e.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert e.value.body["error"]["type"] == "rate_limit_error"
    # Counting tokens does not take from the limit.
    assert c.messages.count_tokens(model=QWEN, messages=[{"role": "user", "content": "x"}]).input_tokens > 0


def test_allowed_models_are_enforced(gateway):
    key = create(gateway, "--models", QWEN)
    c = client(gateway, key["key"])
    c.messages.create(model=QWEN, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        c.messages.create(model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert CLAUDE in e.value.body["error"]["message"]


def test_usage_has_the_exact_tokens_of_streamed_and_plain_requests(gateway):
    key = create(gateway)
    c = client(gateway, key["key"])
    expected = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    for model in (CLAUDE, QWEN):
        for text in ("plain [sim words=17]", "cached [sim words=5 cache_read=3 cache_write=4]"):
            msg = c.messages.create(model=model, max_tokens=100, messages=[{"role": "user", "content": text}])
            with c.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": text}]) as s:
                streamed = s.get_final_message()
            for m in (msg, streamed):
                expected["input_tokens"] += m.usage.input_tokens
                expected["output_tokens"] += m.usage.output_tokens
                expected["cache_read_input_tokens"] += m.usage.cache_read_input_tokens or 0
                expected["cache_creation_input_tokens"] += m.usage.cache_creation_input_tokens or 0
    got = wait_for_usage(gateway, key["key_id"], 8)
    assert got["requests"] == 8
    for k, v in expected.items():
        assert got[k] == v, (k, got, expected)
    assert expected["output_tokens"] > 0 and expected["cache_read_input_tokens"] == 4 * 3


def test_sigterm_loses_no_usage_of_served_requests(new_gateway):
    g = new_gateway()
    key = create(g)
    c = client(g, key["key"])
    output = 0
    for i in range(20):
        if i % 2:
            with c.messages.stream(model=QWEN, max_tokens=100, messages=[{"role": "user", "content": f"x{i} [sim words=9]"}]) as s:
                output += s.get_final_message().usage.output_tokens
        else:
            output += c.messages.create(model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": f"x{i}"}]).usage.output_tokens
    assert g.stop() == 0
    got = totals(g, key["key_id"])
    assert got["requests"] == 20 and got["output_tokens"] == output


def test_tokens_per_minute_budget(gateway):
    key = create(gateway, "--tokens-per-minute", "30")
    c = client(gateway, key["key"])
    first = c.messages.create(model=QWEN, max_tokens=100, messages=[{"role": "user", "content": "x [sim words=40]"}])
    assert first.usage.output_tokens == 40, "a request may start while the budget is positive (and overdraw it)"
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model=QWEN, max_tokens=100, messages=[{"role": "user", "content": "again"}])
    assert "tokens per minute" in e.value.body["error"]["message"]
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.response.headers["anthropic-ratelimit-tokens-limit"] == "30"


def test_last_use_is_recorded(gateway):
    key = create(gateway)
    assert gateway.admin("keys", "show", key["key_id"], "--json")["last_used_at"] is None
    before = int(time.time())
    client(gateway, key["key"]).messages.create(model=QWEN, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    deadline = time.time() + 5
    while (used := gateway.admin("keys", "show", key["key_id"], "--json")["last_used_at"]) is None and time.time() < deadline:
        time.sleep(0.1)
    assert used is not None and used >= before


def test_monthly_token_budget(gateway):
    key = create(gateway, "--monthly-token-budget", "30")
    c = client(gateway, key["key"])
    first = c.messages.create(model=QWEN, max_tokens=100, messages=[{"role": "user", "content": "x [sim words=40]"}])
    assert first.usage.output_tokens == 40, "a request may start while the month's tokens are below the budget"
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model=QWEN, max_tokens=100, messages=[{"role": "user", "content": "again"}])
    assert "monthly token budget" in e.value.body["error"]["message"]
    assert int(e.value.response.headers["retry-after"]) >= 1
    other = create(gateway)
    client(gateway, other["key"]).messages.create(model=QWEN, max_tokens=5, messages=[{"role": "user", "content": "x"}])
