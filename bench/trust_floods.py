#!/usr/bin/env python3
"""The daemon under issue 26's two floods, for one berth binary (run it once
with main's binary and once with the new one to compare):

1. slow bodies: N connections (default 1,000, the default cap) each send
   `POST /ui/login` with `Content-Length: 100` and no body; the daemon's RSS
   and open descriptors are sampled, and `/healthz` and an authenticated
   `/status` are timed during the flood;
2. log tails: 32 requests at once for `GET /logs/web?tail=T` on a ~20 MB log,
   the daemon's peak RSS sampled every 20 ms.

Loopback only; every loop is bounded in count and time.

    bench/trust_floods.py [--berth target/debug/berth] [--conns 1000]
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TOKEN = "bench-token"
SERVICE = """project: {p}
services:
  web:
    image: berth-local/busybox:stable
    command: [sh, -c, 'yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456 | head -n 200000; echo one > /www/index.html; exec httpd -f -p 8000 -h /www']
    health: {{ timeout: 60s }}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sample(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return fds, rss


def get(port, path, token=None, timeout=5.0):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            return r.status, len(body), time.monotonic() - started
    except urllib.error.HTTPError as e:
        return e.code, 0, time.monotonic() - started
    except Exception as e:  # a timeout or a refused connection
        return f"no answer ({type(e).__name__})", 0, time.monotonic() - started


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--berth", default="target/debug/berth")
    a.add_argument("--conns", type=int, default=1000)
    args = a.parse_args()
    berth = os.path.abspath(args.berth)
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="berth-floods-")
    project = f"bfl{os.getpid() % 100000}"
    env = dict(os.environ, BERTH_STATE_DIR=os.path.join(work, ".state"), BERTH_TOKEN=TOKEN)
    subprocess.run([berth, "baseimages"], env=env, check=True, capture_output=True)
    with open(os.path.join(work, "services.yaml"), "w") as f:
        f.write(SERVICE.format(p=project))
    port = free_port()
    log = open(os.path.join(work, "daemon.log"), "w")
    d = subprocess.Popen([berth, "watch", "-f", "services.yaml", "--interval", "1h",
                          "--listen", f"127.0.0.1:{port}"], cwd=work, env=env,
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            code, n, _ = get(port, "/status", TOKEN)
            if code == 200:
                with urllib.request.urlopen(urllib.request.Request(
                        f"http://127.0.0.1:{port}/status",
                        headers={"Authorization": f"Bearer {TOKEN}"})) as r:
                    if b'"result":"ok"' in r.read():
                        break
            time.sleep(0.5)
        else:
            sys.exit("the daemon did not converge in 120 s")
        time.sleep(2)
        idle = sample(d.pid)
        print(f"binary: {berth}")
        print(f"idle: {idle[0]} descriptors, RSS {idle[1] / 1024:.1f} MiB")

        # 1. Slow bodies.
        conns = []
        head = (b"POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
        failed = 0
        flood_started = time.monotonic()
        while len(conns) < args.conns and failed < 50 and time.monotonic() - flood_started < 60:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(head)
                conns.append(s)
            except OSError:
                failed += 1
        print(f"  {len(conns)} connections open, {failed} failed to connect, "
              f"in {time.monotonic() - flood_started:.1f} s")
        time.sleep(2)
        during = sample(d.pid)
        health = get(port, "/healthz")
        status = get(port, "/status", TOKEN)
        print(f"slow-body flood of {len(conns)} connections: {during[0]} descriptors, "
              f"RSS {during[1] / 1024:.1f} MiB; /healthz {health[0]} in {health[2]:.2f} s; "
              f"/status with a token {status[0]} in {status[2]:.2f} s")
        time.sleep(15)
        later = sample(d.pid)
        health = get(port, "/healthz")
        print(f"  15 s later: {later[0]} descriptors, RSS {later[1] / 1024:.1f} MiB; "
              f"/healthz {health[0]} in {health[2]:.2f} s")
        for s in conns:
            s.close()
        time.sleep(3)
        after = sample(d.pid)
        print(f"  after the flood: {after[0]} descriptors, RSS {after[1] / 1024:.1f} MiB")

        # 2. Log tails.
        for tail in (10000, 200000):
            base_fds, base = sample(d.pid)
            peak = [base, base_fds]
            stop = threading.Event()

            def sampler():
                while not stop.is_set():
                    fds, rss = sample(d.pid)
                    peak[0] = max(peak[0], rss)
                    peak[1] = max(peak[1], fds)
                    time.sleep(0.02)

            t = threading.Thread(target=sampler)
            t.start()
            results = [None] * 32

            def reader(i):
                results[i] = get(port, f"/logs/web?tail={tail}", TOKEN, timeout=120)

            started = time.monotonic()
            readers = [threading.Thread(target=reader, args=(i,)) for i in range(32)]
            for r in readers:
                r.start()
            for r in readers:
                r.join()
            took = time.monotonic() - started
            stop.set()
            t.join()
            codes = sorted({str(r[0]) for r in results})
            size = max(r[1] for r in results)
            print(f"32 x GET /logs/web?tail={tail}: answers {','.join(codes)} ({size / 1e6:.1f} MB each), "
                  f"{took:.1f} s; RSS {base / 1024:.1f} -> peak {peak[0] / 1024:.1f} MiB; "
                  f"descriptors {base_fds} -> peak {peak[1]}")
            time.sleep(2)
    finally:
        d.kill()
        d.wait()
        subprocess.run([berth, "destroy"], cwd=work, env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
