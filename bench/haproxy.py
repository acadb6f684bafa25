"""HAProxy section of the benchmarks (bench/bench.py imports it): `immutable_haproxy_deployment`
against the system's HAProxy (`haproxy -W`) on loopback, its stats socket in a temporary
directory, with the test app's releases v1 and v2 as the targets.

1. gate pass to verified weights: from the provider's debug log, the `shifting all traffic`
   line (the gate has passed) to the return of the read-back (`show stat`) that verifies the
   split, i.e. the provider's next log line;
2. Runtime API round trips: `HAProxy Runtime API` debug lines after the gate, and in the apply;
3. requests failed during cut-overs under a steady load: a strict open-loop generator (asyncio,
   one keep-alive connection per worker, no retry; every error, timeout and non-2xx counts)
   through HAProxy's frontend while releases alternate v1 -> v2 -> v1 ..., stepping the rate up
   until the generator cannot hold it; cross-checked with `show stat` (hrsp_5xx, econ, eresp).
"""

import asyncio
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

B = None  # bench/bench.py sets this to itself (its helpers, and its list of children)

RATES = (200, 500, 1000, 2000, 3000, 4000, 6000, 8000, 12000)


def workers(rate):
    """Connections: one per 20 req/s (at least 16), so that a worker waits 50 ms between
    requests and the rate is limited by CPU, not by one connection's latency."""
    return max(16, rate // 20)
HELD = 0.97  # the share of the target rate that must complete for the rate to count as held


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def haproxy_cfg(sock, port):
    return f"""global
    stats socket {sock} mode 600 level admin
    hard-stop-after 5s
    maxconn 4096

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout check 1s
    option idle-close-on-response

frontend fe
    bind 127.0.0.1:{port}
    default_backend web

backend web
    balance roundrobin
    option httpchk GET /health
"""


def api(sock, command):
    """One Runtime API exchange on the stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    return b"".join(chunks).decode(errors="replace")


def show_stat(sock):
    """Sums over the frontend and backend rows of `show stat` for what the load could hit."""
    text = api(sock, "show stat")
    lines = text.strip().splitlines()
    head = lines[0].lstrip("# ").split(",")
    out = {"fe_5xx": 0, "be_5xx": 0, "econ": 0, "eresp": 0, "fe_req": 0}
    for l in lines[1:]:
        row = dict(zip(head, l.split(",")))
        num = lambda k: int(row.get(k) or 0)  # noqa: E731
        if row["pxname"] == "fe" and row["svname"] == "FRONTEND":
            out["fe_5xx"] += num("hrsp_5xx")
            out["fe_req"] += num("req_tot")
        elif row["pxname"] == "web" and row["svname"] == "BACKEND":
            out["be_5xx"] += num("hrsp_5xx")
            out["econ"] += num("econ")
            out["eresp"] += num("eresp")
    return out


def deployment_tf(sock):
    return B.IMMUTABLE_REQ + f"""
variable "release" {{
  type = string
}}

variable "port" {{
  type = number
}}

resource "immutable_haproxy_deployment" "web" {{
  runtime_api = "unix://{sock}"
  backend     = "web"
  release     = var.release
  targets     = [{{ id = "127.0.0.1", port = var.port }}]

  health_check {{
    path              = "/health"
    healthy_threshold = 2
    interval          = "1s"
  }}
}}
"""


def parse_log(text):
    """From a TF_LOG_PROVIDER=debug log of one apply: Runtime API exchanges (in the apply and
    after the gate), and gate pass (`shifting all traffic`) to the verified read-back."""
    lines = []
    for line in text.splitlines():
        if "terraform-provider-immutable:" not in line:
            continue
        ts = re.search(B.TS, line)
        if ts:
            lines.append((B.parse_ts(ts.group(1)), line))
    is_api = lambda l: "HAProxy Runtime API" in l  # noqa: E731
    gate = next((i for i, (_, l) in enumerate(lines) if "shifting all traffic" in l), None)
    apply_calls = [l for _, l in lines if is_api(l) and "tf_rpc=ApplyResourceChange" in l]
    out = {"calls": sum(1 for _, l in lines if is_api(l)), "apply_calls": len(apply_calls),
           "after_gate": None, "to_verified": None, "gate_to_verified_ms": None}
    if gate is None:
        return out
    after = [(t, l) for t, l in lines[gate + 1:] if is_api(l)]
    out["after_gate"] = len(after)
    # The weight write, then the read-backs that verify it; verified when the provider logs
    # its next line after the last of them.
    w = next((i for i, (_, l) in enumerate(lines) if i > gate and is_api(l) and "weight" in l), None)
    if w is None:
        return out
    j = w + 1
    while j < len(lines) and is_api(lines[j][1]) and "show stat" in lines[j][1]:
        j += 1
    if j < len(lines) and j > w + 1:
        out["to_next_line_ms"] = (lines[j][0] - lines[gate][0]) * 1000
        out["to_verified"] = sum(1 for _, l in lines[gate + 1:j] if is_api(l))
        # Each step's share: gate line -> exchange 1 -> ... -> the line after the last read.
        out["steps_ms"] = [(lines[k + 1][0] - lines[k][0]) * 1000 for k in range(gate, j)]
        out["steps"] = [lines[k][1].split("terraform-provider-immutable: ", 1)[-1][:90]
                        for k in range(gate, j + 1)]
        # The read-back's exchange is logged as it starts; its return is not logged, so the
        # provider's next line bounds it from above (the line below bounds it from below).
        # The next line is Terraform's shutdown request, after the response and the state
        # write: too late. The read-back's own duration is taken as that of the `show stat`
        # before the write (its line to the write's line: exchange, parse, compute).
        out["gate_to_readback_ms"] = (lines[j - 1][0] - lines[gate][0]) * 1000
        out["read_ms"] = (lines[w][0] - lines[w - 1][0]) * 1000 if "show stat" in lines[w - 1][1] else 0
        out["gate_to_verified_ms"] = out["gate_to_readback_ms"] + out["read_ms"]
    return out


class Load:
    """An open-loop generator: `workers(rate)` workers, one keep-alive connection each, requests at
    fixed times (rate / workers per worker, late ones sent at once, never skipped). No retry:
    a refused or reset connection, a timeout, a malformed reply or a non-2xx is a failure (the
    worker then reconnects for its next request)."""

    def __init__(self, port, rate):
        self.port, self.rate = port, rate
        self.workers = workers(rate)
        self.ok = self.failed = 0
        self.errors = {}
        self.by_version = {}
        self.lat = []
        self.stopping = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t0 = time.perf_counter()
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.thread.join(30)
        return self.result()

    def result(self):
        total = self.ok + self.failed
        return {"rate": self.rate, "workers": self.workers, "ok": self.ok, "failed": self.failed, "total": total,
                "seconds": self.elapsed, "achieved": total / self.elapsed if self.elapsed else 0,
                "errors": dict(self.errors), "by_version": dict(self.by_version),
                "p99_ms": sorted(self.lat)[int(len(self.lat) * 0.99)] * 1000 if self.lat else None}

    def _run(self):
        self.loop.run_until_complete(self._main())
        self.elapsed = self.end - self.t0

    async def _main(self):
        await asyncio.gather(*(self._worker(i) for i in range(self.workers)))
        self.end = time.perf_counter()

    def _fail(self, kind):
        self.failed += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def _worker(self, i):
        period = self.workers / self.rate
        n = 0
        first = self.t0 + i * period / self.workers
        reader = writer = None
        req = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode()
        while not self.stopping:
            due = first + n * period
            n += 1
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", self.port), 2)
                writer.write(req)
                status, body, close = await asyncio.wait_for(self._response(reader), 5)
                self.lat.append(time.perf_counter() - t)
                if 200 <= status < 300:
                    self.ok += 1
                    v = re.search(rb"v\d+", body)
                    v = v.group(0).decode() if v else "?"
                    self.by_version[v] = self.by_version.get(v, 0) + 1
                else:
                    self._fail(f"http {status}")
                if close:
                    writer.close()
                    writer = None
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                self._fail(type(e).__name__)
                if writer is not None:
                    writer.close()
                writer = None
        if writer is not None:
            writer.close()

    @staticmethod
    async def _response(reader):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        hdr = {}
        for l in lines[1:]:
            if b":" in l:
                k, v = l.split(b":", 1)
                hdr[k.strip().lower()] = v.strip().lower()
        if b"content-length" in hdr:
            body = await reader.readexactly(int(hdr[b"content-length"]))
        elif hdr.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                body += await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            raise ValueError("no length")
        return status, body, hdr.get(b"connection") == b"close"


def bench_haproxy(a, work, apps):
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(exe, os.X_OK):
        raise RuntimeError("no haproxy on PATH nor at /usr/sbin/haproxy (apt-get install haproxy)")
    hdir = Path(tempfile.mkdtemp(prefix="hapb-", dir="/tmp"))
    sock = hdir / "admin.sock"
    port = free_port()
    (hdir / "haproxy.cfg").write_text(haproxy_cfg(sock, port))
    version = B.capture([exe, "-v"]).splitlines()[0]
    hap = B.start_server([exe, "-W", "-f", str(hdir / "haproxy.cfg")], hdir / "haproxy.out")
    for _ in range(250):
        if sock.exists():
            try:
                api(sock, "show info")
                break
            except OSError:
                pass
        if hap.poll() is not None:
            raise RuntimeError(f"haproxy exited: {(hdir / 'haproxy.out').read_text()}")
        time.sleep(0.02)

    d = work / "haproxy-deployment"
    d.mkdir()
    (d / "main.tf").write_text(deployment_tf(sock))
    cli = work / "haproxy.tfrc"
    B.write_cli_config(cli, {"immutable-infra/immutable": Path(a.provider).parent})
    ports = {"v1": apps["v1"], "v2": apps["v2"]}
    state = {"release": None}

    def apply(release, label):
        logf = work / f"haproxy-{label}.log"
        env = B.tf_env(a, cli, {"TF_LOG_PROVIDER": "debug", "TF_LOG_PATH": str(logf)})
        wall, _, out = B.run([a.terraform, "apply", "-auto-approve", "-no-color", "-input=false",
                              "-var", f"release={release}", "-var", f"port={ports[release]}"],
                             d, env)
        s = parse_log(logf.read_text())
        logf.unlink()
        s["wall"] = wall
        state["release"] = release
        return s

    def flip():
        return "v2" if state["release"] == "v1" else "v1"

    try:
        setup = {"create": apply("v1", "create"), "release": apply("v2", "release")}
        # 1, 2: cut-overs with no load.
        quiet = []
        for i in range(a.runs):
            for _ in range(2):
                quiet.append(apply(flip(), f"quiet-{i}-{len(quiet)}"))
            B.log(f"haproxy run {i + 1}/{a.runs}: gate to verified "
                  f"{quiet[-1]['gate_to_verified_ms']:.1f} ms")
        # A `show stat` round trip from here, to compare with the provider's (†).
        show_ms = []
        for _ in range(20):
            t = time.perf_counter()
            api(sock, "show stat")
            show_ms.append((time.perf_counter() - t) * 1000)
        # 3: steady load through the frontend, stepping the rate up.
        steps = []
        for rate in RATES:
            before = show_stat(sock)
            load = Load(port, rate)
            load.start()
            time.sleep(1.0)
            cuts = [apply(flip(), f"load-{rate}-{k}") for k in range(a.runs)]
            time.sleep(1.0)
            r = load.stop()
            after = show_stat(sock)
            r["stat"] = {k: after[k] - before[k] for k in after}
            r["cut_overs"] = len(cuts)
            r["gate_to_verified_ms"] = [c["gate_to_verified_ms"] for c in cuts]
            r["held"] = r["achieved"] >= HELD * rate
            steps.append(r)
            B.log(f"haproxy load {rate}/s: achieved {r['achieved']:.0f}/s, failed "
                  f"{r['failed']}/{r['total']}, p99 {r['p99_ms']:.1f} ms, stat {r['stat']}")
            if not r["held"]:
                break
    finally:
        B.stop(hap)
        shutil.rmtree(hdir, ignore_errors=True)
    return {"version": version, "setup": setup, "quiet": quiet, "steps": steps, "show_ms": show_ms,
            "command": os.environ.get("BENCH_COMMAND", "bench/bench.py")}


def report(w, hp, runs):
    """Appends the HAProxy section to the report (`w` writes one line)."""
    if not hp:
        return
    q = hp["quiet"]
    g = [s["gate_to_verified_ms"] for s in q if s["gate_to_verified_ms"] is not None]
    after = [s["after_gate"] for s in q if s["after_gate"] is not None]
    to_v = [s["to_verified"] for s in q if s["to_verified"] is not None]
    calls = [s["calls"] for s in q]
    apply_calls = [s["apply_calls"] for s in q]
    w("## 6. HAProxy: gate pass to verified weights, Runtime API round trips, requests lost\n")
    w(f"`immutable_haproxy_deployment` against {hp['version'].split(' - ')[0]} (`haproxy -W`) on "
      "loopback, its stats socket in a temporary directory, a backend `web` with `balance "
      "roundrobin`, `option httpchk GET /health` and no servers; targets are the test app's "
      "releases v1 and v2 (one server each), gated with `healthy_threshold = 2`, `interval = "
      "\"1s\"`, traffic all at once. Every apply alternates the release (v1 → v2 → v1 ...), with "
      "`TF_LOG_PROVIDER=debug`; the times come from the provider's log timestamps. "
      f"Measured with `{hp.get('command', 'bench/bench.py')}`.\n")
    w(f"| {len(q)} cut-overs (no load) | median (min–max) |\n|---|---|")
    rb = [s["gate_to_readback_ms"] for s in q if s.get("gate_to_readback_ms") is not None]
    nx = [s["to_next_line_ms"] for s in q if s.get("to_next_line_ms") is not None]
    w(f"| gate pass (`shifting all traffic`) to verified weights: read-back sent + one `show stat` "
      f"exchange (†) | **{B.spread(g, '{:.0f}', ' ms')}** |")
    w(f"| gate pass to the read-back's `show stat` sent (lower bound) | {B.spread(rb, '{:.0f}', ' ms')} |")
    w(f"| gate pass to the provider's next log line (upper bound: Terraform's shutdown request, "
      f"after the response and the state write) | {B.spread(nx, '{:.0f}', ' ms')} |")
    w(f"| Runtime API round trips, gate pass to verified | {B.spread(to_v)} |")
    w(f"| Runtime API round trips after the gate passed | {B.spread(after)} |")
    w(f"| Runtime API round trips in `ApplyResourceChange` | {B.spread(apply_calls)} |")
    w(f"| Runtime API round trips in the whole `terraform apply` (plan and refresh too) | "
      f"{B.spread(calls)} |")
    w(f"| `terraform apply` wall | {B.spread([s['wall'] for s in q], '{:.2f}', ' s')} |")
    w("")
    w("(†) The provider logs each Runtime API exchange as it starts, and nothing when the read-back "
      "returns: its duration is taken as that of the `show stat` just before the weight write (its "
      "log line to the write's). Log timestamps have 1 ms resolution. For comparison, a `show stat` "
      f"round trip from the benchmark's Python client: {B.spread(hp.get('show_ms', []), '{:.2f}', ' ms')} "
      "(20 exchanges).\n")
    steps = hp["steps"]
    held = [s for s in steps if s["held"]]
    w(f"**Under load.** A strict open-loop generator (Python asyncio, one worker per 20 req/s "
      "and at least 16, one keep-alive connection each, requests at fixed times, no retry; a refused or reset "
      "connection, a timeout, a malformed reply and a non-2xx all count as failed) sends `GET /` "
      f"through HAProxy's frontend while {runs} cut-overs run back to back; the rate steps up "
      f"until fewer than {HELD:.0%} of the scheduled requests complete. `show stat` deltas "
      "over the same window cross-check it (frontend and backend `hrsp_5xx`, backend `econ`, "
      "`eresp`).\n")
    w("| rate asked | achieved | held | failed / total | p99 latency | v1 / v2 answers | "
      "`show stat` 5xx (fe/be), econ, eresp | gate → verified under load |\n"
      "|---|---|---|---|---|---|---|---|")
    for s in steps:
        st = s["stat"]
        bv = s["by_version"]
        gv = [x for x in s["gate_to_verified_ms"] if x is not None]
        errs = f" ({', '.join(f'{k} {v}' for k, v in s['errors'].items())})" if s["errors"] else ""
        w(f"| {s['rate']}/s, {s.get('workers', '?')} connections | {s['achieved']:.0f}/s | {'yes' if s['held'] else 'no'} | "
          f"{s['failed']} / {s['total']}{errs} | {s['p99_ms']:.1f} ms | "
          f"{bv.get('v1', 0)} / {bv.get('v2', 0)} | {st['fe_5xx']}/{st['be_5xx']}, {st['econ']}, "
          f"{st['eresp']} | {B.spread(gv, '{:.0f}', ' ms')} |")
    w("")
    if held:
        top = held[-1]
        w(f"Highest rate held: **{top['rate']} req/s** ({top['achieved']:.0f}/s achieved), "
          f"**{top['failed']} failed of {top['total']}** requests across {top['cut_overs']} "
          "cut-overs. Where a step was not held, the generator fell behind its schedule: it is "
          "one Python thread, sharing the 2 cores with HAProxy, the test apps, Terraform and the "
          "provider; see that row's `show stat` columns for whether HAProxy failed anything "
          "there.\n")
    else:
        w("No rate was held.\n")
