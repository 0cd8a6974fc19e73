"""OpenTelemetry traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, proxy-server exports over OTLP/HTTP
(protobuf) one server span per request with the GenAI semantic-convention attributes and a client
span for the Bedrock call, continuing the client's W3C traceparent. The receiver here is a plain HTTP
server that decodes what arrives with the OpenTelemetry project's own protobuf classes."""

import gzip
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import os
import subprocess
import threading
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from stack import MASTER, MODEL, binary, http, start, start_sim

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SECRET = "SECRET-PROMPT-TEXT-7f3a"


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: every span it was sent, decoded."""

    def __init__(self):
        self.requests = []
        self.paths = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.paths.append((self.path, self.headers.get("content-type")))
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                outer.requests.append(req)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        """(resource attributes, span) of everything received."""
        out = []
        for req in self.requests:
            for rs in req.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    out.extend((resource, s) for s in ss.spans)
        return out

    def close(self):
        self.server.shutdown()


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


@pytest.fixture
def traced(tmp_path):
    receiver = Receiver()
    sim, sim_url = start_sim()
    env = {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": sim_url, "AWS_ENDPOINT_URL_BEDROCK": sim_url,
        "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
        "STORE_PATH": str(tmp_path / "gateway.db"), "MASTER_API_KEY": MASTER,
        # Spans are exported whatever the log level.
        "LOG_LEVEL": "warn",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "gateway-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    proxy, url = start(binary("PROXY_SERVER_BIN", "proxy-server"), env)
    yield url, receiver
    for p in (proxy, sim):
        p.terminate()
        p.wait(timeout=30)
    receiver.close()


def test_a_streamed_request_is_one_trace_continuing_the_clients(traced):
    url, receiver = traced
    status, _, body = http("POST", f"{url}/v1/messages", {
        "model": MODEL, "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": f"{SECRET} [sim words=8 delay_ms=5]"}],
    }, {"x-api-key": MASTER, "anthropic-version": "2023-06-01", "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert status == 200 and b"message_stop" in body
    deadline = time.time() + 20
    while time.time() < deadline:
        spans = receiver.spans()
        if any(s.kind == Span.SPAN_KIND_SERVER for _, s in spans) and any(s.kind == Span.SPAN_KIND_CLIENT for _, s in spans):
            break
        time.sleep(0.1)
    assert receiver.paths and all(p == ("/v1/traces", "application/x-protobuf") for p in receiver.paths), receiver.paths
    spans = receiver.spans()
    servers = [(r, s) for r, s in spans if s.kind == Span.SPAN_KIND_SERVER]
    clients = [s for _, s in spans if s.kind == Span.SPAN_KIND_CLIENT]
    assert len(servers) == 1 and len(clients) == 1, [(s.name, s.kind) for _, s in spans]
    resource, server = servers[0]
    (client,) = clients
    assert resource["service.name"] == "gateway-under-test"

    # The client's trace goes on: same trace id, the client's span is the parent.
    assert server.trace_id.hex() == TRACE_ID
    assert server.parent_span_id.hex() == PARENT_ID
    assert server.name == "POST /v1/messages"
    a = attrs(server.attributes)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "aws.bedrock"
    assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == MODEL
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] == 8, a
    assert a["http.response.status_code"] == 200 and a["http.request.method"] == "POST"
    assert a["gateway.outcome"] == "completed"
    # The span lasts as long as the stream (it ends when the stream does, not at the head).
    assert server.end_time_unix_nano - server.start_time_unix_nano >= 8 * 5_000_000

    # The Bedrock call is its child.
    assert client.trace_id == server.trace_id and client.parent_span_id == server.span_id
    c = attrs(client.attributes)
    assert c["gen_ai.request.model"].endswith("anthropic.claude-opus-4-8"), c
    assert client.name == f"chat {c['gen_ai.request.model']}"
    assert c["aws.bedrock.operation"] == "InvokeModelWithResponseStream"

    # Never prompt text, never key material (the masked key only).
    everything = repr([attrs(s.attributes) for _, s in spans]) + repr([s.name for _, s in spans])
    assert SECRET not in everything
    assert MASTER not in everything and MASTER[:12] not in everything
    assert a["key"] == f"{MASTER[:6]}...{MASTER[-4:]}", a["key"]


def test_a_bedrock_refusal_marks_the_call_span_as_an_error(traced):
    url, receiver = traced
    status, _, _ = http("POST", f"{url}/v1/messages", {
        "model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "[sim error=throttling]"}],
    }, {"x-api-key": MASTER})
    assert status == 429
    deadline = time.time() + 20
    while time.time() < deadline and len(receiver.spans()) < 2:
        time.sleep(0.1)
    by_kind = {s.kind: s for _, s in receiver.spans()}
    client, server = by_kind[Span.SPAN_KIND_CLIENT], by_kind[Span.SPAN_KIND_SERVER]
    assert attrs(client.attributes)["error.type"] == "rate_limit_error"
    assert client.status.code == client.status.STATUS_CODE_ERROR
    assert attrs(server.attributes)["http.response.status_code"] == 429
    # No client traceparent: a trace of its own.
    assert server.parent_span_id == b""


def test_an_unsupported_otlp_protocol_stops_start_up(tmp_path):
    out = subprocess.run([str(binary("PROXY_SERVER_BIN", "proxy-server")), "--listen", "127.0.0.1:0"],
                         env={**os.environ, "AWS_REGION": "us-east-1", "STORE_PATH": str(tmp_path / "g.db"),
                              "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in out.stderr and "grpc" in out.stderr
