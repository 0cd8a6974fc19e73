"""`cargo xtask dashboard-snapshot`: the dashboard's main panels as one SVG (docs/dashboard.svg),
drawn from Prometheus's answers to the dashboard's own queries while proxy-server serves a demo-like
load on bedrock-sim (Grafana is not in the package registries this project installs from, so no
screenshot). Usage: snapshot.py OUTPUT.svg [SECONDS]; binaries from BEDROCK_SIM_BIN, PROXY_SERVER_BIN,
PROXY_ADMIN_BIN."""

import html
import re
import math
import random
import sys
import tempfile
import threading
import time

from stack import MASTER, Stack, dashboard_queries, limited_key

MODELS = ["claude-opus-4-8", "claude-sonnet-4-5", "claude-haiku-4-5"]
PANELS = [
    # (title in the picture, dashboard panel title, legends to draw or None for all, unit)
    ("Requests per second by path and status", "Requests by path and status", None, "req/s"),
    ("Latency by model, p50 and p99", "Latency by model (p50, p99)", None, "s"),
    ("Time to first token by model, p50 and p99", "Time to first token by model (p50, p99)", None, "s"),
    ("Gateway overhead by route, p50 and p99", "Gateway overhead by route (p50, p99)", None, "ms"),
    ("Tokens per second by model", "Tokens by model", None, "tok/s"),
    ("Gateway limit refusals vs Bedrock throttling", "Gateway limit refusals vs Bedrock throttling", None, "req/s"),
]
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def load(stack, seconds, key):
    """Four clients for `seconds`: plain requests and streams on three models, repeated
    deterministic prompts (response-cache hits), Bedrock throttles (1 in 25), and a key whose limit
    refuses most of its requests."""
    stop = time.time() + seconds
    rnd = random.Random(7)

    def client(n):
        i = 0
        while time.time() < stop:
            i += 1
            model = MODELS[(i + n) % len(MODELS)]
            r = rnd.random()
            if r < 0.04:
                stack.message("[sim error=throttling]", model=model)
            elif r < 0.10:
                stack.message("a question asked again", temperature=0, model=model)
            elif r < 0.14:
                stack.message("limited", key=key, model=model)
            elif r < 0.55:
                stack.message(f"stream {n} {i} [sim words=60 delay_ms=15 ttfb_ms=250]", stream=True, model=model)
            else:
                stack.message(f"plain {n} {i} [sim words=80 ttfb_ms=400 cache_read=200]", model=model)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def nice_max(v):
    if v <= 0 or math.isnan(v):
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def label(metric, legend):
    return "".join(metric.get(part[2:-2], "") if part.startswith("{{") else part
                   for part in re.split(r"(\{\{\w+\}\})", legend)).strip()


def draw(panels, start_s, end_s, build):
    cols, pw, ph = 2, 560, 250
    w, h = cols * pw + 20, math.ceil(len(panels) / cols) * ph + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">Bedrock gateway dashboard (deploy/grafana/gateway.json), '
           f'drawn from Prometheus under a demo load</text>',
           f'<text x="10" y="40" fill="#555">{html.escape(build)}; {int(end_s - start_s)} s of load, '
           f'4 clients, bedrock-sim with scripted waits; each line one query of the dashboard</text>']
    for k, (title, series, unit) in enumerate(panels):
        x0, y0 = 10 + (k % cols) * pw, 55 + (k // cols) * ph
        left, top, cw, ch = x0 + 50, y0 + 22, pw - 70, ph - 100
        out.append(f'<rect x="{x0}" y="{y0}" width="{pw - 10}" height="{ph - 8}" fill="#fafafa" stroke="#ddd"/>')
        out.append(f'<text x="{x0 + 8}" y="{y0 + 15}" font-size="12" font-weight="bold">{html.escape(title)}</text>')
        scale = 1000.0 if unit == "ms" else 1.0
        ymax = nice_max(max([v * scale for _, pts in series for _, v in pts if not math.isnan(v)] or [0]))
        for i in range(5):
            yv = ymax * i / 4
            yy = top + ch - ch * i / 4
            out.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + cw}" y2="{yy:.1f}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{left - 4}" y="{yy + 3:.1f}" text-anchor="end" fill="#555">{yv:g}</text>')
        out.append(f'<text x="{x0 + pw - 20}" y="{y0 + 15}" text-anchor="end" fill="#555">{unit}</text>')
        for i, (name, pts) in enumerate(series[:10]):
            color = COLORS[i % len(COLORS)]
            path, pen = [], "M"
            for t, v in pts:
                if math.isnan(v):
                    pen = "M"
                    continue
                px = left + cw * (t - start_s) / max(end_s - start_s, 1)
                py = top + ch - ch * min(v * scale / ymax, 1.0)
                path.append(f"{pen}{px:.1f},{py:.1f}")
                pen = "L"
            if path:
                out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
            lx, ly = x0 + 8 + (i % 2) * 270, top + ch + 22 + (i // 2) * 13
            out.append(f'<rect x="{lx}" y="{ly - 8}" width="10" height="3" fill="{color}"/>'
                       f'<text x="{lx + 14}" y="{ly - 3}">{html.escape(name[:45])}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    output = sys.argv[1]
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 120
    build = sys.argv[3] if len(sys.argv) > 3 else "proxy-server"
    with tempfile.TemporaryDirectory() as work:
        stack = Stack(work, scrape="2s")
        try:
            key = limited_key(stack)
            start_s = time.time()
            load(stack, seconds, key)
            end_s = time.time()
            stack.wait_scraped()
            queries = dashboard_queries(rate_interval="20s")
            panels = []
            for title, dash_title, _, unit in PANELS:
                series = []
                for t, legend, expr in queries:
                    if t != dash_title:
                        continue
                    for s in stack.query_range(expr, start_s, end_s, 5):
                        pts = [(float(ts), float(v)) for ts, v in s["values"]]
                        if any(v > 0 for _, v in pts if not math.isnan(v)):
                            series.append((label(s["metric"], legend), pts))
                series.sort()
                panels.append((title, series, unit))
            # The overhead's percentiles over the whole load, for docs/OBSERVABILITY.md.
            window = f"{int(end_s - start_s) + 5}s"
            for q in (0.5, 0.99):
                for s in stack.query(f'histogram_quantile({q}, sum by (le, stream) (rate(gateway_overhead_seconds_bucket{{path="/v1/messages"}}[{window}])))', at=end_s + 4):
                    print(f"overhead p{int(q * 100)} stream={s['metric']['stream']}: {float(s['value'][1]) * 1000:.2f} ms")
            for s in stack.query(f'sum by (stream) (rate(gateway_overhead_seconds_count{{path="/v1/messages"}}[{window}]))', at=end_s + 4):
                print(f"requests/s stream={s['metric']['stream']}: {float(s['value'][1]):.1f}")
        finally:
            stack.stop()
    open(output, "w").write(draw(panels, start_s, end_s, build))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
