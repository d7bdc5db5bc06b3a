#!/usr/bin/env python3
"""The routing gateway, measured in one run on loopback:

1. Overhead: wrk (a standard HTTP load tool) against a service directly on its
   published port, then through `berth serve` -> requests/s and p99 latency, and
   their ratios, at 1, 4 and 16 connections, for two backends: busybox httpd
   (one forked process per connection, closes after each answer) and a small
   keep-alive server (Python's ThreadingHTTPServer speaking HTTP/1.1, so wrk's
   connections and the gateway's pooled ones are reused). Goal: at least 0.9x
   the direct requests/s and p99 within +0.5 ms.
2. Switch time: from the start of `berth apply` (after changing the active
   version's env) to the first request through the gateway that the new
   container answers, over the switches.
3. Failed requests: two client threads send GETs through the gateway without
   pause during 20 switches (a side-by-side replace each), and every answer that
   is not a 200 with a known body counts as failed. Goal: 0.

Usage: bench/gateway_bench.py [--switches 20] [--seconds 10]
Needs target/release/berth, wrk (apt-get install wrk), and the busybox and
python3.11 bases (`berth baseimages python3.11`). Sends traffic to 127.0.0.1 only; every loop is bounded.
"""
import argparse, http.client, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "target", "release", "berth")
SPEC = """project: {project}
services:
  web:
    image: berth-local/busybox:stable
    command: [sh, -c, 'echo "$GREETING" > /www/index.html && exec httpd -f -p 8000 -h /www']
    public: true
    env: {{ GREETING: "{greeting}" }}
    health: {{ interval: 50ms }}
  ka:
    image: berth-local/python3.11:stable
    command: [python3, -c, {keepalive}]
    public: true
    health: {{ interval: 50ms }}
"""
KEEPALIVE = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        body = b"ka\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 128
S(("", 8000), H).serve_forever()
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path="/", timeout=5):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode(errors="replace").strip()
        c.close()
        return r.status, body
    except Exception as e:  # a refused or reset connection is a failed request
        return 0, repr(e)


def wrk(url, seconds, connections):
    out = subprocess.run(["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return rps, float(p99.group(1)) * scale, int(errors.group(1)) if errors else 0, sock.group(1) if sock else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--switches", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=10)
    # busybox httpd forks per connection: above a few connections its accept
    # backlog overflows and 1 s SYN retransmits dominate p99, direct or not.
    ap.add_argument("--connections", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--backends", nargs="+", default=["ka", "web"])
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    work = tempfile.mkdtemp(prefix="berth-gwbench-")
    project = f"gwb{os.getpid() % 10000}"
    env = dict(os.environ, BERTH_STATE_DIR=os.path.join(work, ".state"), NO_COLOR="1")
    env.pop("BERTH_TOKEN", None)
    berth = lambda *a: subprocess.run([BERTH, *a], cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    write = lambda g: open(os.path.join(work, "services.yaml"), "w").write(
        SPEC.format(project=project, greeting=g, keepalive=json.dumps(KEEPALIVE)))
    gw_port = free_port()
    gateway = None
    try:
        write("g0")
        berth("apply")
        gateway = subprocess.Popen([BERTH, "serve", "--gateway", f"127.0.0.1:{gw_port}"], cwd=work, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if get(gw_port, "/web/") == (200, "g0"):
                break
            time.sleep(0.1)
        ports = dict(re.findall(r"^(\w+)\s+\S+\s.*?127\.0\.0\.1:(\d+)", berth("status"), re.M))
        for _ in range(100):
            if get(gw_port, "/ka/") == (200, "ka"):
                break
            time.sleep(0.1)
        print(f"1. overhead: wrk --latency for {args.seconds}s each, same containers, same run "
              f"(load average before: {os.getloadavg()[0]:.2f})")
        print(f"   {'backend':<10} {'conns':>5} {'direct req/s':>12} {'gateway req/s':>13} {'ratio':>6} "
              f"{'p99 direct':>10} {'p99 gateway':>11} {'p99 +ms':>8}  goal: >= 0.9x, <= +0.5 ms")
        for name, service in [b for b in (("keep-alive", "ka"), ("busybox", "web")) if b[1] in args.backends]:
            for conns in args.connections:
                d_rps, d_p99, d_err, d_sock = wrk(f"http://127.0.0.1:{ports[service]}/", args.seconds, conns)
                g_rps, g_p99, g_err, g_sock = wrk(f"http://127.0.0.1:{gw_port}/{service}/", args.seconds, conns)
                ok = "ok" if g_rps / d_rps >= 0.9 and g_p99 - d_p99 <= 0.5 else "MISSED"
                print(f"   {name:<10} {conns:>5} {d_rps:>12.0f} {g_rps:>13.0f} {g_rps / d_rps:>6.2f} "
                      f"{d_p99:>8.2f}ms {g_p99:>9.2f}ms {g_p99 - d_p99:>+8.2f}  {ok}"
                      + (f"  errors: direct {d_err} {d_sock} gateway {g_err} {g_sock}" if d_err or g_err or d_sock or g_sock else ""))

        if args.switches == 0:
            return 0
        print(f"2+3. {args.switches} switches (env change of the active version, side-by-side replace) under two request loops")
        stop = threading.Event()
        results = []
        lock = threading.Lock()

        def loop():
            seen = []
            while not stop.is_set() and len(seen) < 200_000:
                seen.append(get(gw_port, "/web/"))
            with lock:
                results.extend(seen)

        threads = [threading.Thread(target=loop) for _ in range(2)]
        for t in threads:
            t.start()
        switch_ms = []
        known = {"g0"}
        for i in range(1, args.switches + 1):
            greeting = f"g{i}"
            known.add(greeting)
            write(greeting)
            t0 = time.monotonic()
            apply = subprocess.Popen([BERTH, "apply"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            # Serving: the first answer of the new container through the gateway,
            # polled while apply runs (it switches before it stops the old one).
            while get(gw_port, "/web/")[1] != greeting and time.monotonic() - t0 < 30:
                time.sleep(0.002)
            switch_ms.append((time.monotonic() - t0) * 1000)
            if apply.wait(timeout=60) != 0:
                sys.exit(f"berth apply failed on switch {i}")
            applied = time.monotonic()
            print(f"   switch {i:2}: {switch_ms[-1]:6.0f} ms to serving (apply done after {1000 * (applied - t0):6.0f} ms)")
        stop.set()
        for t in threads:
            t.join()
        failed = [r for r in results if r[0] != 200 or r[1] not in known]
        print(f"   switch time: median {statistics.median(switch_ms):.0f} ms, "
              f"p95 {sorted(switch_ms)[int(0.95 * (len(switch_ms) - 1))]:.0f} ms, max {max(switch_ms):.0f} ms")
        print(f"   requests during the switches: {len(results)}, failed: {len(failed)} (goal: 0)")
        for r in failed[:5]:
            print(f"     failed: {r}")
        return 1 if failed else 0
    finally:
        if gateway:
            gateway.kill()
        subprocess.run([BERTH, "destroy"], cwd=work, env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
