#!/usr/bin/env python3
"""The floor: what the engine alone takes to create and start N containers with
the settings berth gives them (busybox httpd, a CFS quota of 2 CPUs, 4 GiB,
init, restart unless-stopped, a free loopback port, labels), calling the
Engine API directly over its socket, `workers` at a time; then to see each one
answer on its port (the health gate's work). No berth, no Compose: nothing
can be faster than this on this engine.

The teardown floor: N such containers taken down by the engine alone, W at
once, either as `DELETE ?force=true` (a kill and a removal in one call) or as
`POST /stop?t=10` then `DELETE` (what `compose down` does).

Usage: bench/floor.py [N] [workers]   (prints seconds; removes what it made)
       bench/floor.py teardown N W [force|stop]
"""
import http.client, json, socket, sys, threading, time, urllib.request

SOCKET = "/var/run/docker.sock"
IMAGE = "berth-local/busybox:stable"
CMD = ["sh", "-c", "echo hi > /www/index.html && exec httpd -f -p 8000 -h /www"]


class UnixConnection(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=120)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(SOCKET)


def call(conn, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    out = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {out[:200]!r}")
    return json.loads(out) if out else None


def body(i):
    return {
        "Image": IMAGE,
        "Cmd": CMD,
        "Env": ["GREETING=hi"],
        "Labels": {"berth.floor": "1", "berth.service": f"s{i}"},
        "ExposedPorts": {"8000/tcp": {}},
        "HostConfig": {
            "CpuPeriod": 100000,
            "CpuQuota": 200000,
            "Memory": 4 << 30,
            "PortBindings": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
            "Init": True,
            "RestartPolicy": {"Name": "unless-stopped"},
        },
    }


def answers(port):
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status < 400:
                    return
        except OSError:
            time.sleep(0.01)


def floor(n, workers):
    """(seconds to create and start all, seconds until all answer); cleans up."""
    t = time.perf_counter()
    ids = create(n, workers)
    started = time.perf_counter() - t
    conn = UnixConnection()
    for cid in ids:
        info = call(conn, "GET", f"/containers/{cid}/json")
        answers(int(info["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"]))
    answered = time.perf_counter() - t
    for cid in ids:
        call(conn, "DELETE", f"/containers/{cid}?force=true")
    if len(ids) != n:
        sys.exit(f"only {len(ids)} of {n} containers started")
    return started, answered


def each(items, workers, act):
    """`act(conn, item)` for every item, `workers` at once, each worker with
    its own connection; seconds taken."""
    todo, lock = list(items), threading.Lock()

    def work():
        conn = UnixConnection()
        while True:
            with lock:
                if not todo:
                    return
                item = todo.pop()
            act(conn, item)

    t = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t


def create(n, workers):
    """Creates and starts N floor containers, `workers` at once; their IDs."""
    ids, lock = [], threading.Lock()

    def act(conn, i):
        cid = call(conn, "POST", f"/containers/create?name=berth-floor-s{i}", body(i))["Id"]
        call(conn, "POST", f"/containers/{cid}/start")
        with lock:
            ids.append(cid)

    each(range(n), workers, act)
    return ids


def teardown(ids, workers, mode="force"):
    """Seconds for the engine alone to take `ids` down, `workers` at once."""

    def act(conn, cid):
        if mode == "stop":
            call(conn, "POST", f"/containers/{cid}/stop?t=10")
            call(conn, "DELETE", f"/containers/{cid}")
        else:
            call(conn, "DELETE", f"/containers/{cid}?force=true")

    return each(ids, workers, act)


if __name__ == "__main__" and sys.argv[1:2] == ["teardown"]:
    n, workers = int(sys.argv[2]), int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "force"
    ids = create(n, 8)
    print(f"teardown floor, {n} containers, {workers} at once, {mode}: {teardown(ids, workers, mode):.2f} s")
elif __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    s, a = floor(n, workers)
    print(f"floor, {n} containers, {workers} at once: started in {s:.2f} s, all answering in {a:.2f} s")
