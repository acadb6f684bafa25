"""Canary analysis section of the benchmarks (bench/bench.py imports it): how long traffic stays
on a release after one of its metrics crosses its threshold.

A release v2 (the test app) takes a 20% canary behind the ALB emulator's data plane, under a
steady load; Debian's Prometheus scrapes it every second; the deployment's analysis queries its
error rate every second (`max = 0.01`). Mid-canary the app is told to fail 20% of its requests.
The benchmark polls Prometheus with the same query (every 20 ms) for when the value crosses the
threshold as Prometheus sees it, and moto's listener (every 20 ms, not through the emulator,
whose throttling the provider's calls share) for when all traffic is back on v1. The bound the
design promises: one analysis interval + one scrape interval + 200 ms.
"""

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

B = None  # bench/bench.py sets this to itself (its helpers, and its list of children)

INTERVAL_S = 1.0  # the metric's interval
SCRAPE_S = 1.0  # Prometheus's scrape interval
MAX = 0.01
QUERY = ('(sum(rate(app_requests_total{release="{release}",code=~"5.."}[3s])) or vector(0)) / '
         'sum(rate(app_requests_total{release="{release}"}[3s]))')
POLL_S = 0.02
RATE = 60  # requests per second through the data plane


def start_prometheus(work, target):
    exe = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.access(exe, os.X_OK):
        raise RuntimeError("no prometheus on PATH nor at /usr/bin/prometheus (bash scripts/tools.sh install)")
    d = Path(tempfile.mkdtemp(prefix="prom-bench-", dir=work))
    port = B.haproxy_section.free_port()
    (d / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: {SCRAPE_S:.0f}s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n")
    proc = B.start_server([exe, f"--config.file={d / 'prometheus.yml'}",
                           f"--storage.tsdb.path={d / 'data'}", "--log.level=warn",
                           f"--web.listen-address=127.0.0.1:{port}"], d / "prometheus.out")
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            targets = api(address, "/api/v1/targets")["activeTargets"]
            if any(t["health"] == "up" for t in targets):
                return address, proc
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"Prometheus did not scrape {target} within 30 s")


def api(address, path):
    with urllib.request.urlopen(address + path, timeout=2) as r:
        return json.loads(r.read())["data"]


def query(address, promql):
    result = api(address, "/api/v1/query?query=" + urllib.parse.quote(promql))["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: no data


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    c.request("POST", path, body)
    c.getresponse().read()
    c.close()


class Load:
    """GET / through the data plane at a fixed rate, a new connection per request."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        next_at = time.monotonic()
        while not self.stopped.is_set():
            try:
                c = http.client.HTTPConnection(self.host, self.port, timeout=2)
                c.request("GET", "/")
                c.getresponse().read()
                c.close()
            except OSError:
                pass
            next_at += 1 / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stopped.set()
        self.thread.join()


def weights(elb, listener):
    action = elb.describe_listeners(ListenerArns=[listener])["Listeners"][0]["DefaultActions"][0]
    groups = action.get("ForwardConfig", {}).get("TargetGroups", [])
    return {g["TargetGroupArn"]: g.get("Weight", 0) for g in groups}


def deployment_tf(endpoint, fx, prometheus):
    """bench.py's first-release deployment (the release's app as `targets`, 2 HTTP checks),
    with a 20% canary and the analysis."""
    query = QUERY.replace('"', '\\"')
    base = B.deployment_config(endpoint, fx, "first")
    end = base.rstrip().rfind("}")
    return base[:end] + f"""
  traffic {{
    strategy       = "canary"
    canary_percent = 20
    step_interval  = "30s"
  }}

  analysis {{
    prometheus {{
      address = "{prometheus}"
    }}
    metric {{
      name     = "error-rate"
      query    = "{query}"
      max      = {MAX}
      interval = "{INTERVAL_S:.0f}s"
    }}
  }}
""" + base[end:]


def bench_analysis(a, work, apps):
    endpoint, _, procs, listener_url = B.start_emulator(a, work)
    moto_port = int(B.wait_for_line(work / "moto.log", r"Running on http://127\.0\.0\.1:(\d+)",
                                    procs[0]).group(1))
    ec2, elb = B.aws_clients(endpoint)
    _, moto_elb = B.aws_clients(f"http://127.0.0.1:{moto_port}")
    out = work / "app-canary.log"
    proc = B.start_server([a.test_app, "--version", "v2"], out)
    canary = int(B.wait_for_line(out, r"listening http://127\.0\.0\.1:(\d+)", proc).group(1))
    prometheus, _prom = start_prometheus(work, f"127.0.0.1:{canary}")
    fx = B.create_fixture(ec2, elb, "bench-analysis", "10.9", start="fixed")
    d = work / "deployment-analysis"
    d.mkdir()
    (d / "main.tf").write_text(deployment_tf(endpoint, fx, prometheus))
    cli = work / "analysis.tfrc"
    B.write_cli_config(cli, {"immutable-infra/immutable": Path(a.provider).parent})
    env = B.tf_env(a, cli)
    tf = [a.terraform, "apply", "-auto-approve", "-no-color", "-input=false"]
    B.run(tf + ["-var", "release=v1", "-var", f"port={apps['v1']}"], d, env)
    live = max(weights(moto_elb, fx["listener"]).items(), key=lambda kv: kv[1])[0]
    promql = QUERY.replace("{release}", "v2")
    samples = []
    with Load(listener_url(fx["listener"])):
        for i in range(a.runs):
            post(canary, "/_control/faults", "0 0s")
            p = subprocess.Popen(tf + ["-var", "release=v2", "-var", f"port={canary}"], cwd=d,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 60
            while weights(moto_elb, fx["listener"]).get(live) != 80:
                if time.monotonic() > deadline or p.poll() is not None:
                    raise RuntimeError(f"the canary step never came: {p.communicate()[0][-2000:]}")
                time.sleep(POLL_S)
            time.sleep(3.0)  # healthy canary traffic first, measured and passing
            post(canary, "/_control/faults", "0.2 0s")
            switched = time.monotonic()
            crossed = back = None
            while back is None and time.monotonic() < deadline:
                now = time.monotonic()
                if crossed is None:
                    v = query(prometheus, promql)
                    if v is not None and v > MAX:
                        crossed = now
                if weights(moto_elb, fx["listener"]).get(live) == 100:
                    back = time.monotonic()
                time.sleep(POLL_S)
            output = p.communicate(timeout=60)[0].decode()
            if crossed is None or back is None or "Analysis failed at 20%" not in output:
                raise RuntimeError(f"run {i + 1}: crossed {crossed}, back {back}\n{output[-3000:]}")
            samples.append({"crossed_to_back_ms": (back - crossed) * 1000,
                            "failing_to_crossed_ms": (crossed - switched) * 1000})
            B.log(f"analysis run {i + 1}/{a.runs}: threshold crossed (as Prometheus sees it) to "
                  f"traffic back {samples[-1]['crossed_to_back_ms']:.0f} ms")
            time.sleep(4.0)  # the failing window leaves the [3s] rate before the next run
    return {"samples": samples, "bound_ms": (INTERVAL_S + SCRAPE_S) * 1000 + 200,
            "command": os.environ.get("BENCH_COMMAND", "bench/bench.py")}


def report(w, an, runs):
    """Appends the analysis section to the report (`w` writes one line)."""
    if not an:
        return
    ms = [s["crossed_to_back_ms"] for s in an["samples"]]
    w("## 7. Canary analysis: threshold crossed to traffic moved back\n")
    w("`immutable_bluegreen_deployment` with a 20% canary and one Prometheus metric (the "
      f"release's error rate over 3 s, `max = {MAX}`, `interval = \"{INTERVAL_S:.0f}s\"`) behind the "
      f"ALB emulator's data plane, under {RATE} req/s; Debian's Prometheus scrapes the test app every "
      f"{SCRAPE_S:.0f} s. Mid-canary the app fails 20% of its requests. From when the benchmark's own "
      "query (every 20 ms) first sees the value above `max`, to when moto's listener (read every "
      f"20 ms) shows all traffic back on v1. Measured with `{an.get('command', 'bench/bench.py')}`.\n")
    w(f"| {len(ms)} failing canaries | median (min–max) | bound (interval + scrape + 200 ms) |\n|---|---|---|")
    w(f"| threshold crossed to traffic back | **{B.spread(ms, '{:.0f}', ' ms')}** | "
      f"{an['bound_ms']:.0f} ms |")
    seen = [s["failing_to_crossed_ms"] for s in an["samples"]]
    w(f"| (before that: the app failing to Prometheus's value crossing `max`: scrapes and the "
      f"3 s rate) | {B.spread(seen, '{:.0f}', ' ms')} | |")
    w("")
    w(f"Within the bound in {sum(m <= an['bound_ms'] for m in ms)} of {len(ms)} runs. The provider "
      "measures one interval after the step begins and every interval after; the benchmark's "
      "poll adds up to 20 ms at each end.\n")
