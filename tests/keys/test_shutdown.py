"""The crash test: SIGTERM while proxy-server is under load (streamed and plain requests in flight
from many threads) loses no usage record of a request that got a response. Requests in flight
finish (graceful drain); those refused after the listener closed got no response and leave no
record."""

import signal
import threading
import time

import anthropic

CLAUDE = "claude-sonnet-4-5-20250929"
QWEN = "qwen.qwen3-coder-480b-a35b-v1:0"


def test_sigterm_under_load_loses_no_usage_record(new_gateway):
    g = new_gateway(RATE_LIMIT_ENABLED="false")
    key = g.admin("keys", "create", "--user-id", "load", "--name", "crash", "--json")
    c = anthropic.Anthropic(base_url=g.url, api_key=key["key"], max_retries=0, timeout=60)
    served = []  # (output tokens) of every request that got a whole response
    refused = []  # connection-level failures (after the listener closed)
    failures = []  # anything else is a bug
    lock = threading.Lock()
    stop = threading.Event()

    def worker(n):
        i = 0
        while not stop.is_set():
            i += 1
            model = CLAUDE if (n + i) % 2 else QWEN
            text = f"load {n}-{i} [sim words=15 delay_ms=8 ttfb_ms=20]"
            try:
                if i % 2:
                    with c.messages.stream(model=model, max_tokens=100, messages=[{"role": "user", "content": text}]) as s:
                        out = s.get_final_message().usage.output_tokens
                else:
                    out = c.messages.create(model=model, max_tokens=100, messages=[{"role": "user", "content": text}]).usage.output_tokens
                with lock:
                    served.append(out)
            except anthropic.APIConnectionError as e:
                with lock:
                    refused.append(repr(e))
                time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - every other failure is reported
                with lock:
                    failures.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(12)]
    for t in threads:
        t.start()
    # Load until plenty has been served, then SIGTERM with requests in flight.
    deadline = time.time() + 30
    while len(served) < 60 and time.time() < deadline:
        time.sleep(0.05)
    in_flight_at_term = len(served)
    g.proc.send_signal(signal.SIGTERM)
    code = g.proc.wait(timeout=60)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert code == 0
    assert not failures, failures[:5]
    assert in_flight_at_term >= 60, "the load never got going"
    assert len(served) > in_flight_at_term, "requests in flight at SIGTERM were finished, not cut"
    rows = g.admin("usage", "--key-id", key["key_id"], "--totals", "--json")
    assert sum(r["requests"] for r in rows) == len(served)
    assert sum(r["output_tokens"] for r in rows) == sum(served) == 15 * len(served)
