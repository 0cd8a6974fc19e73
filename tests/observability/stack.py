"""What the observability test and the dashboard snapshot share: bedrock-sim, a proxy-server in
front of it (embedded store, response cache, a price table), a real Prometheus scraping it with the
repository's alert rules, a mixed load, and the dashboard's queries read from
deploy/grafana/gateway.json."""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from harness import ROOT, binary, start, start_sim  # noqa: E402

DASHBOARD = ROOT / "deploy/grafana/gateway.json"
RULES = ROOT / "deploy/prometheus/rules.yaml"
MODEL = "claude-opus-4-8"
MASTER = "sk-observability-test-0123456789"
PRICES = f"""
[prices."{MODEL}"]
input = 5.0
output = 25.0
cache_read = 0.5
cache_write = 6.25
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name):
    """A program of the system (Debian's `prometheus` package); a clear failure when missing."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"`{name}` is not installed: apt-get install prometheus (.ci/run does)")
    return path


def http(method, url, body=None, headers=None, timeout=30):
    """(status, headers, body bytes) of one request; HTTP errors are answers, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Stack:
    """bedrock-sim, proxy-server and Prometheus, started in `workdir`; `stop()` ends all three."""

    def __init__(self, workdir, sim_bin=None, proxy_bin=None, admin_bin=None, scrape="1s"):
        self.workdir = pathlib.Path(workdir)
        self.procs = []
        if sim_bin:
            self.sim, self.sim_url = start(sim_bin)
        else:
            self.sim, self.sim_url = start_sim()
        self.procs.append(self.sim)
        config = self.workdir / "gateway.toml"
        config.write_text(PRICES)
        self.store = self.workdir / "gateway.db"
        self.admin_bin = admin_bin or binary("PROXY_ADMIN_BIN", "proxy-admin")
        env = {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.sim_url, "AWS_ENDPOINT_URL_BEDROCK": self.sim_url,
            "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
            "STORE_PATH": str(self.store), "LOG_LEVEL": "warn", "MASTER_API_KEY": MASTER,
            "CACHE_ENABLED": "true", "PROXY_CONFIG": str(config),
        }
        self.proxy, self.url = start(proxy_bin or binary("PROXY_SERVER_BIN", "proxy-server"), env)
        self.procs.append(self.proxy)
        self.prom_url = self._start_prometheus(scrape)

    def _start_prometheus(self, scrape):
        port = free_port()
        target = urllib.parse.urlparse(self.url).netloc
        config = self.workdir / "prometheus.yml"
        config.write_text(
            f"global:\n  scrape_interval: {scrape}\n  evaluation_interval: {scrape}\n"
            f"rule_files:\n  - {RULES}\n"
            f"scrape_configs:\n  - job_name: gateway\n    static_configs:\n      - targets: ['{target}']\n"
        )
        log = open(self.workdir / "prometheus.log", "w")
        proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200:
                    return url
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"Prometheus did not start: {(self.workdir / 'prometheus.log').read_text()}")
            time.sleep(0.2)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

    # -- the gateway

    def admin(self, *args):
        out = subprocess.run([str(self.admin_bin), *args], capture_output=True, text=True,
                             env={**os.environ, "STORE_PATH": str(self.store)}, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        return json.loads(out.stdout)

    def message(self, text, key=MASTER, stream=False, model=MODEL, **extra):
        body = {"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}], **extra}
        if stream:
            body["stream"] = True
        return http("POST", f"{self.url}/v1/messages", body, {"x-api-key": key, "anthropic-version": "2023-06-01"})

    def metrics(self):
        return http("GET", f"{self.url}/metrics")[2].decode()

    # -- Prometheus

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = str(at)
        status, _, body = http("GET", f"{self.prom_url}/api/v1/query?{urllib.parse.urlencode(params)}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"Prometheus refused `{expr}`: {answer.get('error', body[:300])}")
        return answer["data"]["result"]

    def query_range(self, expr, start_s, end_s, step):
        params = {"query": expr, "start": str(start_s), "end": str(end_s), "step": str(step)}
        status, _, body = http("GET", f"{self.prom_url}/api/v1/query_range?{urllib.parse.urlencode(params)}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"Prometheus refused `{expr}`: {answer.get('error', body[:300])}")
        return answer["data"]["result"]

    def rules(self):
        return json.loads(http("GET", f"{self.prom_url}/api/v1/rules")[2])["data"]["groups"]

    def wait_scraped(self, seconds=60):
        """Waits until Prometheus holds the request count the gateway reports now, then two more
        scrapes (so that every rate has two samples after the load)."""
        text = self.metrics()
        want = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                   if l.startswith("gateway_requests_total{") and 'path="/metrics"' not in l)
        deadline = time.time() + seconds
        while True:
            got = self.query('sum(gateway_requests_total{path!="/metrics"})')
            if got and float(got[0]["value"][1]) >= want:
                break
            if time.time() > deadline:
                raise AssertionError(f"Prometheus never scraped the load: {got} < {want}")
            time.sleep(0.5)
        time.sleep(3)


def limited_key(stack):
    """A store key allowed one request an hour."""
    return stack.admin("keys", "create", "--user-id", "obs", "--name", "limited",
                       "--rate-limit-requests", "1", "--rate-limit-window", "3600", "--json")["key"]


def drive_load(stack, i, key):
    """One round of a short mixed load: plain successes (one with prompt-cache tokens), streams, a
    Bedrock throttle, a response-cache miss then hit, a request of the limited `key` (the first
    round's is served, later ones refused), count_tokens and models. Returns what it saw."""
    seen = {"statuses": [], "cache": []}
    for n in range(3):
        seen["statuses"].append(stack.message(f"hello {i} {n}")[0])
    seen["statuses"].append(stack.message(f"cached prompt {i} [sim cache_read=40 cache_write=12]")[0])
    for n in range(2):
        status, _, body = stack.message(f"stream {i} {n} [sim words=12 delay_ms=10 ttfb_ms=150]", stream=True)
        assert b"message_stop" in body, body[-300:]
        seen["statuses"].append(status)
    seen["statuses"].append(stack.message(f"throttle me {i} [sim error=throttling]")[0])
    # The cache is filled off the request path: ask again until it answers.
    deadline = time.time() + 5
    while True:
        status, headers, _ = stack.message(f"deterministic {i}", temperature=0)
        seen["statuses"].append(status)
        seen["cache"].append(headers.get("x-proxy-cache"))
        if seen["cache"][-1] == "hit" or time.time() > deadline:
            break
        time.sleep(0.1)
    http("POST", f"{stack.url}/v1/messages/count_tokens",
         {"model": MODEL, "messages": [{"role": "user", "content": "count me"}]}, {"x-api-key": MASTER})
    http("GET", f"{stack.url}/v1/models", headers={"x-api-key": MASTER})
    seen["statuses"].append(stack.message("limited key", key=key)[0])
    return seen


def dashboard_queries(rate_interval="1m", model=".*", key=".*"):
    """Every query of the dashboard: (panel title, legend, expression with the template variables
    and Grafana's $__rate_interval substituted)."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = (target["expr"].replace("$__rate_interval", rate_interval)
                    .replace("$model", model).replace("$key", key))
            out.append((panel["title"], target.get("legendFormat", ""), expr))
    return out


THRESHOLD = re.compile(r"\s(>=|<=|==|!=|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")


def as_bool(expr):
    """An alert expression `X > 0.05` as `X > bool 0.05`: a series whether or not it fires."""
    m = THRESHOLD.search(expr)
    if m is None:
        raise AssertionError(f"alert expression without a final threshold: {expr}")
    return expr[:m.start()] + f" {m.group(1)} bool {m.group(2)}"
