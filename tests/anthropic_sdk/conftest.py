"""Fixtures for the Anthropic SDK suites: scenario files written by proxy-convert's `sse_scenarios`
example (run against bedrock-sim), served over HTTP the way an Anthropic endpoint serves them."""

import json
import os
import pathlib
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def scenarios(tmp_path_factory):
    """name -> {"request": dict, "message": dict, "sse": bytes}"""
    binary = pathlib.Path(os.environ.get("SSE_SCENARIOS_BIN", ROOT / "target/debug/examples/sse_scenarios"))
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build it with `cargo build -p proxy-convert --examples`")
    out = tmp_path_factory.mktemp("scenarios")
    subprocess.run([str(binary), str(out)], check=True, timeout=120, capture_output=True)
    found = {}
    for path in sorted(out.glob("*.sse")):
        name = path.stem
        found[name] = {
            "request": json.loads((out / f"{name}.request.json").read_text()),
            "message": json.loads((out / f"{name}.json").read_text()),
            "sse": path.read_bytes(),
        }
    assert len(found) >= 7, f"expected the scenarios, found {sorted(found)}"
    return found


@pytest.fixture(scope="session")
def server(scenarios):
    """An HTTP server answering POST /<scenario>/v1/messages with the scenario's JSON or SSE."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            name, _, rest = self.path.lstrip("/").partition("/")
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            scenario = scenarios.get(name)
            if scenario is None or not rest.startswith("v1/messages"):
                self.send_response(404)
                self.end_headers()
                return
            if body.get("stream"):
                payload, ctype = scenario["sse"], "text/event-stream"
            else:
                payload, ctype = json.dumps(scenario["message"]).encode(), "application/json"
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("request-id", "req_scenario")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
