#!/usr/bin/env python3
"""berth watch, measured: save-to-converged latency (median and p95 over 20 saves),
git commit to converged with a 1 s interval, drift repair after `docker rm -f`,
and the idle daemon's RSS and CPU over 60 s with 100 services.

Times come from the daemon's own JSON log (`reconcile started` / `converged`,
microsecond timestamps) against the moment the test changed something.

Usage: bench/watch_bench.py   (needs target/release/berth)
"""
import atexit, datetime, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "target", "release", "berth")
CMD = '[sh, -c, "echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www"]'


def spec(project, n, greeting):
    out = f"project: {project}\nservices:\n"
    for i in range(n):
        g = greeting if i == 0 else "hi"
        out += f"  s{i}:\n    image: berth-local/busybox:stable\n    command: {CMD}\n    env: {{ GREETING: {g} }}\n"
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    def __init__(self, work, args):
        self.log_path = os.path.join(work, "daemon.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BERTH, "watch", "--log-format", "json", *args], cwd=work, stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=dict(os.environ, BERTH_STATE_DIR=os.path.join(work, ".state"), BERTH_LOG="berth=debug"))
        self.seen = 0
        # A daemon left running would fight the next run's over the same project.
        atexit.register(lambda: self.proc.poll() is None and self.proc.kill())

    def events(self):
        with open(self.log_path) as f:
            lines = f.readlines()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait(self, pred, since_index, limit=60):
        """The first log event after since_index that satisfies pred, and its index."""
        t = time.time()
        while time.time() - t < limit:
            ev = self.events()
            for i in range(since_index, len(ev)):
                if pred(ev[i]):
                    return ev[i], i
            time.sleep(0.01)
        sys.exit(f"timed out; log tail: {self.events()[-5:]}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def ts(ev):
    return datetime.datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()


def msg(ev):
    return ev.get("fields", {}).get("message", "")


def trig(ev):
    return ev.get("fields", {}).get("trigger", "").strip('"')


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def save_latency(work):
    path = os.path.join(work, "services.yaml")
    with open(path, "w") as f:
        f.write(spec("wbench", 1, "g0"))
    d = Daemon(work, ["-f", "services.yaml", "--interval", "1h"])
    _, idx = d.wait(lambda e: msg(e) == "converged", 0)
    starts, dones = [], []
    for i in range(1, 21):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(spec("wbench", 1, f"g{i}"))
        time.sleep(0.3)  # let the previous change's own engine events settle
        n = len(d.events())
        t0 = time.time()
        os.rename(tmp, path)
        s, _ = d.wait(lambda e: msg(e) == "reconcile started" and ts(e) >= t0, n)
        c, _ = d.wait(lambda e: msg(e) == "converged" and trig(e) == "file" and e["fields"].get("steps", 0) > 0, n)
        starts.append(ts(s) - t0)
        dones.append(ts(c) - t0)
    # Drift: remove the container by hand, time until the daemon has put it back.
    repairs = []
    for _ in range(5):
        n = len(d.events())
        t0 = time.time()
        subprocess.run(["docker", "rm", "-f", "wbench-s0-0.0.0"], capture_output=True)
        c, _ = d.wait(lambda e: msg(e) == "converged" and e["fields"].get("steps", 0) > 0, n)
        repairs.append(ts(c) - t0)
        time.sleep(0.5)
    d.stop()
    subprocess.run([BERTH, "destroy"], cwd=work, capture_output=True, env=dict(os.environ, BERTH_STATE_DIR=os.path.join(work, ".state")))
    return starts, dones, repairs


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@example.org", "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True, capture_output=True)


def git_latency(work):
    bare, repo = os.path.join(work, "remote.git"), os.path.join(work, "repo")
    os.makedirs(bare)
    git(bare, "init", "--bare", "-q")
    git(work, "clone", "-q", bare, "repo")
    with open(os.path.join(repo, "services.yaml"), "w") as f:
        f.write(spec("gbench", 1, "g0"))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "0")
    git(repo, "push", "-q", "origin", "HEAD:main")
    d = Daemon(work, ["--git", f"file://{bare}", "--ref", "main", "--interval", "1s"])
    _, idx = d.wait(lambda e: msg(e) == "converged" and e["fields"].get("steps", 0) > 0, 0)
    lat = []
    for i in range(1, 11):
        with open(os.path.join(repo, "services.yaml"), "w") as f:
            f.write(spec("gbench", 1, f"g{i}"))
        git(repo, "commit", "-qam", str(i))
        t0 = time.time()
        git(repo, "push", "-q", "origin", "HEAD:main")
        n = len(d.events())
        c, _ = d.wait(lambda e: msg(e) == "converged" and trig(e) == "git" and ts(e) >= t0 and e["fields"].get("steps", 0) > 0, n)
        lat.append(ts(c) - t0)
    d.stop()
    with open(os.path.join(work, "gb.yaml"), "w") as f:
        f.write(spec("gbench", 1, "x"))
    subprocess.run([BERTH, "destroy", "-f", "gb.yaml"], cwd=work, capture_output=True, env=dict(os.environ, BERTH_STATE_DIR=os.path.join(work, ".state")))
    return lat


def idle(work, n=100, seconds=60):
    path = os.path.join(work, "services.yaml")
    with open(path, "w") as f:
        f.write(spec("ibench", n, "hi"))
    env = dict(os.environ, BERTH_STATE_DIR=os.path.join(work, ".state"))
    subprocess.run([BERTH, "apply"], cwd=work, check=True, capture_output=True, env=env)
    d = Daemon(work, ["-f", "services.yaml", "--interval", "30s", "--listen", f"127.0.0.1:{free_port()}"])
    d.wait(lambda e: msg(e) == "converged", 0)
    time.sleep(2)
    pid = d.proc.pid
    tick = os.sysconf("SC_CLK_TCK")

    def cpu():
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / tick

    def rss():
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    c0, t0 = cpu(), time.time()
    peak = rss()
    while time.time() - t0 < seconds:
        time.sleep(1)
        peak = max(peak, rss())
    c1, t1 = cpu(), time.time()
    reconciles = sum(1 for e in d.events() if msg(e) == "converged")
    d.stop()
    subprocess.run([BERTH, "destroy"], cwd=work, capture_output=True, env=env)
    return peak, (c1 - c0) / (t1 - t0) * 100, reconciles


def main():
    work = tempfile.mkdtemp(prefix="berth-watch-bench-")
    os.makedirs(os.path.join(work, "a"))
    starts, dones, repairs = save_latency(os.path.join(work, "a"))
    ms = lambda x: f"{x * 1000:.0f} ms"
    print(f"save -> reconcile started (20 saves, 200 ms debounce): median {ms(statistics.median(starts))}, p95 {ms(pct(starts, 95))}")
    print(f"save -> converged (one env change, container replaced): median {ms(statistics.median(dones))}, p95 {ms(pct(dones, 95))}")
    print(f"docker rm -f -> repaired (5 runs): median {ms(statistics.median(repairs))}, max {ms(max(repairs))}")
    os.makedirs(os.path.join(work, "b"))
    lat = git_latency(os.path.join(work, "b"))
    print(f"git push -> converged (1 s interval, 10 commits): median {ms(statistics.median(lat))}, p95 {ms(pct(lat, 95))}")
    os.makedirs(os.path.join(work, "c"))
    peak, cpu, rec = idle(os.path.join(work, "c"))
    print(f"idle daemon, 100 services, 60 s (30 s resync): peak RSS {peak:.1f} MiB, CPU {cpu:.2f}% of one core, {rec} reconciles")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
