#!/usr/bin/env python3
"""Performance, second round (issue 31), each beside Compose v2 and the engine's
floor measured in the same run, on the same busybox httpd services as
bench/bench.py (2 CPU / 4 GiB, a free loopback port each):

  teardown N...  berth destroy vs `compose down -t 10` vs the floor (the engine
                 alone taking the same N containers down over its API, W at once:
                 bench/floor.py teardown). Goals: <= 0.5x compose, <= 1.1x floor.
  noop N...      a no-op `berth plan` and `apply` vs `compose up -d`, and the
                 breakdown of berth's time (BERTH_TIMINGS=1: process start and
                 exit, connect, each list call, desired state, plan, render)
                 beside its list calls, the engine's floor. Goal: >= 10x compose.
  switch N...    an active switch (`active:` moved to the other version, no
                 restart) with N-1 other services: from the start of `berth
                 apply` to the first answer of the new version through the
                 gateway (`berth serve`), and the requests that failed meanwhile
                 under two request loops. Goal: < 100 ms, 0 failed.
  scale N        apply from nothing (berth vs `compose up -d --wait` vs the
                 floor), then `berth watch` with the dashboard's live stream
                 open: its memory and CPU over a minute.

Usage: bench/perf_bench.py SECTION [N ...]   (needs target/release/berth;
removes what it made)
"""
import http.client, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench, floor  # noqa: E402

BERTH, COMPOSE = bench.BERTH, bench.COMPOSE
# Not bench.py's `benchc`: an engine that failed a removal can keep a record
# under that project that nothing removes, and Compose trips over it.
PROJECT = ["-p", os.environ.get("BENCH_COMPOSE_PROJECT", "benchp")]


def env_for(d, **extra):
    return dict(os.environ, BERTH_STATE_DIR=os.path.join(d, ".state"), **extra)


def timed(cmd, d, env=None, timeout=1800):
    return bench.run(cmd, d, env, timeout)


def row(name, value_s):
    ms = value_s * 1000
    print(f"  {name:<62} {ms:10.1f} ms" if ms < 100 else f"  {name:<62} {ms:10.0f} ms", flush=True)


def ratio(name, a, b, goal):
    print(f"  {name:<62} {a / b:10.3f}    goal {goal}", flush=True)


# --- teardown -----------------------------------------------------------------

def teardown(n, workers=(8,)):
    d = tempfile.mkdtemp(prefix=f"berth-teardown-{n}-")
    env = env_for(d)
    bench.write_specs(d, n)
    up = timed([BERTH, "apply"], d, env)
    destroy = timed([BERTH, "destroy"], d, env)
    cup = timed(COMPOSE + PROJECT + ["up", "-d", "--wait"], d)
    down = compose_down(d, grace=10)
    floors, created = {}, []
    for w in workers:
        t = time.perf_counter()
        ids = floor.create(n, 8)
        created.append(time.perf_counter() - t)
        floors[w] = floor.teardown(ids, w, "force")
    best = min(floors.values())
    print(f"\nteardown, N = {n} (load {' '.join(open('/proc/loadavg').read().split()[:3])})")
    row("berth apply (from nothing, for reference)", up)
    row("compose up -d --wait (for reference)", cup)
    row("berth destroy", destroy)
    row("compose down -t 10", down)
    for w, s in floors.items():
        row(f"floor: engine force-removes, {w} at once", s)
    row("per container: berth / compose / floor", destroy / n)
    print(f"  {'':<62} {down / n * 1000:10.1f} ms (compose)  {best / n * 1000:.1f} ms (floor)")
    ratio("destroy / compose down", destroy, down, "<= 0.5")
    ratio("destroy / floor (best W)", destroy, best, "<= 1.1")
    row("floor: engine create+start, 8 at once (for reference)", min(created))
    ratio("apply (nothing) / compose up --wait", up, cup, "<= 0.8")
    ratio("apply (nothing) / floor create+start", up, min(created), "the floor is 1.0")
    shutil.rmtree(d, ignore_errors=True)


# --- no-op ---------------------------------------------------------------------

SPAN = re.compile(r"(\w+)(?:\{([^}]*)\})?: berth::timing: close time\.busy=([\d.]+)(\w+) time\.idle=([\d.]+)(\w+)")
UNIT = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def phases(cmd, d, env):
    """Wall time of one run, and each timed phase's (busy + idle) seconds."""
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=d, env=dict(env, BERTH_TIMINGS="1"), capture_output=True, text=True)
    wall = time.perf_counter() - t
    out = {}
    for m in SPAN.finditer(p.stderr):
        name = m.group(1) + (f" {m.group(2)}" if m.group(2) else "")
        s = float(m.group(3)) * UNIT[m.group(4)] + float(m.group(5)) * UNIT[m.group(6)]
        out[name] = out.get(name, 0) + s
    return wall, out


def noop(n, reps=15):
    d = tempfile.mkdtemp(prefix=f"berth-noop-{n}-")
    env = env_for(d)
    bench.write_specs(d, n)
    timed([BERTH, "apply"], d, env)
    results = {}
    for cmd in ("plan", "apply"):
        runs = [phases([BERTH, cmd], d, env) for _ in range(reps)]
        walls = [w for w, _ in runs]
        keys = sorted({k for _, p in runs for k in p})
        med = {k: statistics.median(p.get(k, 0) for _, p in runs) for k in keys}
        results[cmd] = (statistics.median(walls), med)
    timed([BERTH, "destroy"], d, env)
    timed(COMPOSE + PROJECT + ["up", "-d"], d)
    compose = statistics.median(timed(COMPOSE + PROJECT + ["up", "-d"], d) for _ in range(5))
    compose_down(d)
    print(f"\nno-op, N = {n} (medians of {reps}; load {' '.join(open('/proc/loadavg').read().split()[:3])})")
    row("compose up -d (no-op, median of 5)", compose)
    for cmd, (wall, med) in results.items():
        print(f"  berth {cmd}:")
        row("  wall (as the shell sees it)", wall)
        whole = med.get("command", 0)
        row("  process start, runtime and exit (wall - command)", wall - whole)
        row("  the command (in the process)", whole)
        for k, v in med.items():
            if k != "command":
                row(f"    {k}", v)
        lists = max((v for k, v in med.items() if k.startswith("list")), default=0)
        row("  the engine's floor: the slowest list call (they run at once)", lists)
        row("  berth's own (wall - slowest list call)", wall - lists)
        ratio(f"  compose / berth {cmd}", compose, wall, ">= 10")
    shutil.rmtree(d, ignore_errors=True)


# --- switch --------------------------------------------------------------------

def switch_spec(n, active):
    lines = ["project: benchs", "services:",
             "  greeter:",
             "    image: berth-local/busybox:stable",
             "    command: [sh, -c, 'echo \"$BERTH_VERSION\" > /www/index.html && exec httpd -f -p 8000 -h /www']",
             "    versions: { \"1.0.0\": {}, \"1.1.0\": {} }",
             f"    active: \"{active}\"",
             "    public: true",
             "    health: { interval: 50ms }"]
    for i in range(n - 1):
        lines += [f"  s{i}:", f"    image: {floor.IMAGE}",
                  "    command: [sh, -c, 'echo hi > /www/index.html && exec httpd -f -p 8000 -h /www']"]
    return "\n".join(lines) + "\n"


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode().strip()
    finally:
        c.close()


def switch(n, switches=10):
    d = tempfile.mkdtemp(prefix=f"berth-switch-{n}-")
    env = env_for(d)
    spec = os.path.join(d, "services.yaml")
    with open(spec, "w") as f:
        f.write(switch_spec(n, "1.0.0"))
    timed([BERTH, "apply"], d, env)
    port = bench_port()
    serve = subprocess.Popen([BERTH, "serve", "--gateway", f"127.0.0.1:{port}"], cwd=d, env=env,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if get(port, "/greeter")[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    stop, answers, failed = threading.Event(), [0], []

    def loop():
        while not stop.is_set():
            try:
                status, body = get(port, "/greeter")
                if status != 200 or body not in ("1.0.0", "1.1.0"):
                    failed.append((status, body))
            except OSError as e:
                failed.append(str(e))
            answers[0] += 1

    loops = [threading.Thread(target=loop) for _ in range(2)]
    for t in loops:
        t.start()
    took, applied = [], []
    active = "1.0.0"
    for _ in range(switches):
        active = "1.1.0" if active == "1.0.0" else "1.0.0"
        with open(spec, "w") as f:
            f.write(switch_spec(n, active))
        t0 = time.perf_counter()
        p = subprocess.Popen([BERTH, "apply"], cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while get(port, "/greeter")[1] != active:
            time.sleep(0.001)
        took.append(time.perf_counter() - t0)
        _, err = p.communicate()
        applied.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"berth apply failed: {err.decode()}")
    stop.set()
    for t in loops:
        t.join()
    serve.terminate()
    serve.wait()
    timed([BERTH, "destroy"], d, env)
    print(f"\nactive switch, N = {n} services ({switches} switches, two request loops)")
    row("apply start -> the new version answers (median)", statistics.median(took))
    row("  max", max(took))
    row("apply start -> apply done (median; the old one drained)", statistics.median(applied))
    print(f"  requests during the switches: {answers[0]}, failed: {len(failed)} (goal 0) {failed[:3]}")
    print(f"  {'goal: the new version answers within':<62} {100:10} ms")
    shutil.rmtree(d, ignore_errors=True)


def bench_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- scale ---------------------------------------------------------------------

def compose_down(d, grace=1):
    """`compose down`, timed; what an engine error leaves (seen at N=1,000:
    "unable to remove filesystem"; at N=200 a network with an endpoint the
    engine still counts) is removed by its label, so the next measure starts
    clean. The time is the failed down's: its containers are gone."""
    t = time.perf_counter()
    p = subprocess.run(COMPOSE + PROJECT + ["down", "-t", str(grace)], cwd=d, capture_output=True, text=True)
    took = time.perf_counter() - t
    if p.returncode != 0:
        print(f"  (compose down failed: {p.stderr.strip().splitlines()[-1:]}; removing what is left)", flush=True)
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT[1]}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        subprocess.run(COMPOSE + PROJECT + ["down", "-t", "1"], cwd=d, capture_output=True)
    return took


def scale(n, seconds=60):
    d = tempfile.mkdtemp(prefix=f"berth-scale-{n}-")
    env = env_for(d, BERTH_TOKEN="bench-token")
    bench.write_specs(d, n)
    print(f"\nscale, N = {n}")
    up = timed([BERTH, "apply"], d, env)
    row("berth apply (from nothing)", up)
    port = bench_port()
    daemon = subprocess.Popen([BERTH, "watch", "--listen", f"127.0.0.1:{port}", "--interval", "30s"],
                              cwd=d, env=env, stderr=subprocess.DEVNULL)
    time.sleep(5)
    cookie = sign_in(port, "bench-token")
    stream = threading.Thread(target=follow_events, args=(port, cookie, seconds + 10), daemon=True)
    stream.start()
    time.sleep(5)
    before, rss0 = cpu_ticks(daemon.pid), rss_kb(daemon.pid)
    peak = rss0
    t = time.time()
    while time.time() - t < seconds:
        time.sleep(1)
        peak = max(peak, rss_kb(daemon.pid))
    cpu = (cpu_ticks(daemon.pid) - before) / os.sysconf("SC_CLK_TCK") / (time.time() - t)
    daemon.terminate()
    daemon.wait()
    print(f"  berth watch, dashboard live stream open, {seconds} s: "
          f"RSS {rss0 / 1024:.1f} MiB at start, {peak / 1024:.1f} MiB peak; CPU {100 * cpu:.2f} % of a core", flush=True)
    timed([BERTH, "destroy"], d, env)
    cup = timed(COMPOSE + PROJECT + ["up", "-d", "--wait"], d, timeout=3600)
    row("compose up -d --wait (from nothing)", cup)
    compose_down(d)
    started, answered = floor.floor(n, 8)
    row("floor: create+start, 8 at once", started)
    row("floor: ... and every port answers", answered)
    ratio("apply / compose up --wait", up, cup, "<= 0.8")
    ratio("apply / floor (all answering)", up, answered, "the floor is 1.0")
    shutil.rmtree(d, ignore_errors=True)


def sign_in(port, token):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/ui/login")
    r = c.getresponse()
    page = r.read().decode()
    login = re.search(r"berth_login=([0-9a-f]+)", r.getheader("Set-Cookie") or "").group(1)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
    c.request("POST", "/ui/login", body=f"token={token}&csrf={csrf}",
              headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"berth_login={login}",
                       "Origin": f"http://127.0.0.1:{port}", "Host": f"127.0.0.1:{port}"})
    r = c.getresponse()
    r.read()
    return re.search(r"(berth_session=[0-9a-f]+)", r.getheader("Set-Cookie") or "").group(1)


def follow_events(port, cookie, seconds):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
    c.request("GET", "/ui/events", headers={"Cookie": cookie, "Accept": "text/event-stream"})
    r = c.getresponse()
    end = time.time() + seconds
    while time.time() < end and r.read1(65536):
        pass


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("teardown", "noop", "switch", "scale"):
        sys.exit(__doc__)
    section, ns = sys.argv[1], [int(a) for a in sys.argv[2:]]
    version = subprocess.run(COMPOSE + ["version", "--short"], capture_output=True, text=True).stdout.strip()
    print(f"compose: {COMPOSE[0]} {version}; berth: {BERTH}", flush=True)
    subprocess.run([BERTH, "baseimages"], check=True, capture_output=True)
    run = {"teardown": teardown, "noop": noop, "switch": switch, "scale": scale}[section]
    for n in ns or {"teardown": [500, 1000], "noop": [100], "switch": [1, 500], "scale": [1000]}[section]:
        run(n)


if __name__ == "__main__":
    main()
