#!/usr/bin/env python3
"""berth vs Docker Compose v2, measured in the same run on the same services.

For N = 100 and 500 (or those given) equivalent services (busybox httpd, 2 CPU /
4 GiB, a free loopback port each), written both as services.yaml and as a
compose file:
  - apply from nothing           berth apply        vs  compose up -d --wait
  - no-op                        berth plan / apply vs  compose up -d
  - one-service change           berth apply        vs  compose up -d
the floor (bench/floor.py: the engine alone creating and starting the same
containers over its API, then each port answering), and the number of engine API calls a no-op `berth plan` makes (counted by a
proxy on the engine socket). Prints medians, berth/compose ratios and the goal
of the performance issue beside each. The peer is Compose v2
(`../shared/tools/compose-v2` prints its path; Debian trixie's package);
`--v1` adds Debian bookworm's Compose 1.29 as a second peer.

Usage: bench/bench.py [--v1] [--all] [N ...]   (needs target/release/berth)
  --all  then runs bench/gateway_bench.py, build_bench.py and scale_bench.py:
         every comparison of the performance issue in one run
"""
import os, re, shutil, socket, statistics, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "target", "release", "berth")
def compose_v2():
    tool = os.path.join(os.path.dirname(ROOT), "shared", "tools", "compose-v2")
    path = subprocess.run([tool], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return [path]


COMPOSE = compose_v2()
IMAGE = "berth-local/busybox:stable"
CMD = ["sh", "-c", "echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www"]


# Another name where the engine keeps a network of `bench` it cannot remove
# (an endpoint it still counts after its containers are gone).
PROJECT_NAME = os.environ.get("BENCH_PROJECT", "bench")


def write_specs(d, n, greeting0="hi"):
    with open(os.path.join(d, "services.yaml"), "w") as f:
        f.write(f"project: {PROJECT_NAME}\nservices:\n")
        for i in range(n):
            g = greeting0 if i == 0 else "hi"
            f.write(f"  s{i}:\n    image: {IMAGE}\n    command: {CMD!r}\n    env: {{ GREETING: {g} }}\n".replace("'", '"'))
    with open(os.path.join(d, "docker-compose.yml"), "w") as f:
        f.write("version: '2.4'\nservices:\n")
        for i in range(n):
            g = greeting0 if i == 0 else "hi"
            f.write(f"  s{i}:\n    image: {IMAGE}\n    command: {CMD!r}\n    environment: {{ GREETING: {g} }}\n"
                    f"    cpus: 2\n    mem_limit: 4g\n    init: true\n    restart: unless-stopped\n"
                    f"    ports: ['127.0.0.1::8000']\n".replace("'", '"'))


def run(cmd, d, env=None, timeout=None):
    print(f"    running: {' '.join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd))}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return float("inf")
    dt = time.perf_counter() - t
    if p.returncode not in (0, 2):
        sys.exit(f"{cmd} failed:\n{p.stdout}\n{p.stderr}")
    return dt


def median(cmd, d, reps):
    return statistics.median(run(cmd, d) for _ in range(reps))


class CountingProxy:
    """A unix-socket proxy in front of the engine that counts HTTP requests."""

    def __init__(self, path):
        self.path, self.count = path, 0
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(path)
        self.srv.listen(64)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.srv.accept()
            u = socket.socket(socket.AF_UNIX)
            u.connect("/var/run/docker.sock")
            threading.Thread(target=self.pipe, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(u, c, False), daemon=True).start()

    def pipe(self, a, b, count):
        while True:
            data = a.recv(65536)
            if not data:
                b.close() if not count else None
                return
            if count:
                self.count += len(re.findall(rb"(?:^|\r\n)(?:GET|POST|PUT|DELETE|HEAD) /", data))
            b.sendall(data)


def bench(n, reps):
    d = tempfile.mkdtemp(prefix=f"berth-bench-{n}-")
    env = dict(os.environ, BERTH_STATE_DIR=os.path.join(d, ".state"))
    write_specs(d, n)
    r = {}
    r["berth apply (from nothing)"] = run([BERTH, "apply"], d, env)
    r["berth no-op plan"] = median([BERTH, "plan"], d, reps)
    r["berth no-op apply"] = median([BERTH, "apply"], d, reps)
    write_specs(d, n, greeting0="changed")
    r["berth one-service change"] = run([BERTH, "apply"], d, env)
    proxy = CountingProxy(os.path.join(d, "docker.sock"))
    run([BERTH, "plan"], d, dict(env, DOCKER_HOST=f"unix://{proxy.path}"))
    calls = proxy.count
    run([BERTH, "destroy"], d, env)

    peer(r, d, n, reps, "compose", COMPOSE, wait=True)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import floor
    started, answered = floor.floor(n, 8)
    r["floor: engine create+start (8 at once)"] = started
    r["floor: ... and every port answers"] = answered
    if WITH_V1:
        peer(r, d, n, reps, "compose 1.29", ["docker-compose"], wait=False)
    shutil.rmtree(d, ignore_errors=True)
    return r, calls


def peer(r, d, n, reps, name, compose, wait):
    """The same three measures for a Compose; `wait`: `up -d --wait` from nothing."""
    write_specs(d, n)
    project = ["-p", "benchc"]
    if wait or n <= 50:
        r[f"{name} up -d (from nothing)"] = run(compose + project + ["up", "-d"] + (["--wait"] if wait else []), d, timeout=900)
    else:
        # docker-compose 1.29 stalls creating many services in one `up` on this
        # engine (seen: stuck at 46 of 500, and once at 34 of 100, for minutes);
        # in batches of 50 it gets there, and that sum is what is reported.
        total = 0.0
        for i in range(0, n, 50):
            total += run(compose + project + ["up", "-d"] + [f"s{j}" for j in range(i, min(n, i + 50))], d, timeout=600)
        r[f"{name} up -d (from nothing)"] = total
    r[f"{name} no-op up -d"] = median(compose + project + ["up", "-d"], d, reps)
    write_specs(d, n, greeting0="changed")
    r[f"{name} one-service change"] = run(compose + project + ["up", "-d"], d)
    run(compose + project + ["down", "-t", "1"], d)


WITH_V1 = "--v1" in sys.argv
# The other comparisons of the performance issue, each its own script, run after
# these in the same run: the gateway, builds, and scale (N=1,000).
WITH_ALL = "--all" in sys.argv


def main():
    ns = [int(a) for a in sys.argv[1:] if a not in ("--v1", "--all")] or [100, 500]
    version = subprocess.run(COMPOSE + ["version", "--short"], capture_output=True, text=True).stdout.strip()
    print(f"compose: {COMPOSE[0]} {version}; berth: {BERTH}", flush=True)
    subprocess.run([BERTH, "baseimages"], check=True, capture_output=True)
    for n in ns:
        reps = 5 if n <= 100 else 3
        r, calls = bench(n, reps)
        load = open("/proc/loadavg").read().split()[:3]
        print(f"\nN = {n} services (medians of {reps} for no-op runs; load {' '.join(load)})")
        for k, v in r.items():
            print(f"  {k:<36} {v * 1000:9.0f} ms")
        print(f"  engine API calls, no-op plan:        {calls:>9}   goal: 1-2 (four lists at once, no ping)")
        rows = [
            ("no-op plan / compose no-op up", r["berth no-op plan"], r["compose no-op up -d"], "<= 0.2 (5x)"),
            ("no-op apply / compose no-op up", r["berth no-op apply"], r["compose no-op up -d"], "<= 0.2 (5x)"),
            ("apply / compose up --wait (nothing)", r["berth apply (from nothing)"], r["compose up -d (from nothing)"], "<= 0.8"),
            ("apply (nothing) / floor, all answering", r["berth apply (from nothing)"], r["floor: ... and every port answers"], "the floor is 1.0"),
            ("one change / compose one change", r["berth one-service change"], r["compose one-service change"], "berth < 1 s"),
        ]
        print(f"  {'ratio':<40} {'berth/compose':>13}  goal")
        for name, b, c, goal in rows:
            print(f"  {name:<40} {b / c:13.3f}  {goal}")
        if WITH_V1:
            print(f"  no-op plan / compose 1.29 no-op up      {r['berth no-op plan'] / r['compose 1.29 no-op up -d']:13.3f}")
        print(flush=True)
    if WITH_ALL:
        here = os.path.dirname(os.path.abspath(__file__))
        for script in (["gateway_bench.py", "--switches", "20"], ["build_bench.py"], ["scale_bench.py"]):
            print(f"== bench/{' '.join(script)}", flush=True)
            subprocess.run([sys.executable, os.path.join(here, script[0]), *script[1:]], check=True)
            print(flush=True)


if __name__ == "__main__":
    main()
