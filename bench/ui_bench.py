#!/usr/bin/env python3
"""The dashboard with N services (default 500), measured in a real browser.

Applies N busybox services, starts `berth watch --listen`, then:
  - weight     the overview's bytes as sent (gzip) and unpacked, plus its CSS and JS
  - server     the time to render /ui/ (median of 9 requests)
  - browser    Debian's chromium over chromedriver: navigation to DOMContentLoaded
               and to load (median of 5), and one in-place update of the live part
               (the SSE fragment swapped in, filters applied, layout forced)
  - sse        a reconcile asked from the page (500 services planned against the
               engine) until the server-sent update is swapped in, and the swap
               alone (from the event's arrival to layout done), median of 5
  - pages      a service's page and the plan page: bytes and server time
  - shots      screenshots of the overview (1280 and 375 px wide), a service's
               page and the plan page, into bench/out/
Goals from the dashboard issue: the page under 150 KB, rendered in under 1 s.
Removes what it applied when done.

Usage: bench/ui_bench.py [N]   (needs target/release/berth, chromium, chromium-driver)
"""
import gzip, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time
import urllib.error, urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.environ.get("BERTH", os.path.join(ROOT, "target", "release", "berth"))
IMAGE = "berth-local/busybox:stable"
TOKEN = "ui-bench-token"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


class WebDriver:
    """The few WebDriver calls the bench needs, over chromedriver's HTTP."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"]}}}}
        for _ in range(100):
            try:
                self.id = self.call("POST", "/session", caps)["sessionId"]
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        sys.exit("chromedriver does not answer")

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())["value"]

    def go(self, url):
        self.call("POST", f"/session/{self.id}/url", {"url": url})

    def js(self, script, asynchronous=False):
        kind = "async" if asynchronous else "sync"
        return self.call("POST", f"/session/{self.id}/execute/{kind}", {"script": script, "args": []})

    def shot(self, path):
        import base64
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("GET", f"/session/{self.id}/screenshot")))

    def size(self, w, h):
        self.call("POST", f"/session/{self.id}/window/rect", {"width": w, "height": h})

    def quit(self):
        self.call("DELETE", f"/session/{self.id}")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    for tool in (BERTH, shutil.which("chromedriver"), "/usr/bin/chromium"):
        if not tool or not os.path.exists(tool):
            sys.exit(f"missing {tool}: cargo build --release; apt-get install chromium chromium-driver")
    d = tempfile.mkdtemp(prefix="berth-ui-bench-")
    env = dict(os.environ, BERTH_STATE_DIR=os.path.join(d, ".state"), BERTH_TOKEN=TOKEN)
    with open(os.path.join(d, "services.yaml"), "w") as f:
        f.write("project: uibench\nservices:\n")
        for i in range(n):
            f.write(f"  s{i}:\n    image: {IMAGE}\n"
                    "    command: [sh, -c, 'echo hi > /www/index.html && exec httpd -f -p 8000 -h /www']\n")
    print(f"applying {n} services...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    subprocess.run([BERTH, "apply"], cwd=d, env=env, check=True, capture_output=True)
    print(f"  applied in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    port, driver_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = subprocess.Popen([BERTH, "watch", "-f", "services.yaml", "--interval", "1h",
                               "--listen", f"127.0.0.1:{port}"], cwd=d, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "daemon.log"), "w"))
    driver = subprocess.Popen(["chromedriver", f"--port={driver_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The daemon's first reconcile lists every row.
        deadline = time.time() + 300
        while True:
            try:
                code, _, body = http(f"{base}/status", headers={"Authorization": f"Bearer {TOKEN}"})
                if code == 200 and len(json.loads(body)["services"]) >= n:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.time() > deadline:
                sys.exit("the daemon did not report every service in 300 s")
            time.sleep(0.5)

        # Sign in as the form does: its CSRF value, in the field and the cookie.
        _, headers, form = http(f"{base}/ui/login")
        login = headers["set-cookie"].split(";")[0]
        csrf = form.decode().split('name="csrf" value="')[1].split('"')[0]
        code, headers, _ = http(f"{base}/ui/login", headers={"Cookie": login},
                                data=urllib.parse.urlencode({"token": TOKEN, "csrf": csrf}).encode())
        assert code == 303, f"sign-in answered {code}"
        cookie = headers["set-cookie"].split(";")[0]
        sizes, times = {}, []
        pages = {}
        for path in ("/ui/service?name=s0", "/ui/plan"):
            got = []
            for _ in range(5):
                t = time.perf_counter()
                _, h, packed = http(base + path, headers={"Cookie": cookie, "Accept-Encoding": "gzip"})
                got.append(time.perf_counter() - t)
            raw = gzip.decompress(packed) if h.get("content-encoding") == "gzip" else packed
            pages[path] = (len(packed), len(raw), statistics.median(got))
        for path in ("/ui/", "/ui/ui.css", "/ui/ui.js"):
            _, h, packed = http(base + path, headers={"Cookie": cookie, "Accept-Encoding": "gzip"})
            raw = gzip.decompress(packed) if h.get("content-encoding") == "gzip" else packed
            sizes[path] = (len(packed), len(raw))
        for _ in range(9):
            t = time.perf_counter()
            http(base + "/ui/", headers={"Cookie": cookie, "Accept-Encoding": "gzip"})
            times.append(time.perf_counter() - t)
        rows = sizes["/ui/"][1] and gzip.decompress(
            http(base + "/ui/", headers={"Cookie": cookie, "Accept-Encoding": "gzip"})[2]).count(b"<tr data-service=")

        wd = WebDriver(driver_port)
        wd.go(f"{base}/ui/login")
        wd.js(f"document.getElementById('token').value = {json.dumps(TOKEN)}; document.forms[0].submit();")
        time.sleep(1)
        nav = []
        for _ in range(5):
            wd.go(f"{base}/ui/")
            nav.append(wd.js("const e = performance.getEntriesByType('navigation')[0];"
                             "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                             "return [e.domContentLoadedEventEnd, e.loadEventEnd, e.responseEnd, p ? p.startTime : -1,"
                             " document.querySelectorAll('#services tbody tr[data-service]').length];"))
        update = wd.js("""
            const done = arguments[arguments.length - 1];
            const live = document.getElementById('live');
            const html = live.innerHTML;
            const t = performance.now();
            live.innerHTML = html;
            document.getElementById('filter-text').dispatchEvent(new Event('input'));
            document.body.offsetHeight;
            done(performance.now() - t);""", asynchronous=True)
        # A reconcile asked from the page, until its update is in place; and
        # the swap alone, from the event's arrival.
        sse = []
        for _ in range(5):
            sse.append(wd.js("""
                const done = arguments[arguments.length - 1];
                const live = document.getElementById('live');
                const csrf = document.querySelector('meta[name=csrf]').content;
                const es = new EventSource('/ui/events?seen=' + encodeURIComponent(live.dataset.seen));
                let asked;
                es.addEventListener('overview', e => {
                    const arrived = performance.now();
                    live.innerHTML = e.data;
                    live.dataset.seen = 'x';
                    document.body.offsetHeight;
                    const swapped = performance.now();
                    es.close();
                    done([swapped - asked, swapped - arrived]);
                });
                es.onopen = () => {
                    asked = performance.now();
                    fetch('/ui/reconcile', {method: 'POST', body: new URLSearchParams({csrf})});
                };""", asynchronous=True))
            wd.go(f"{base}/ui/")
        out = os.path.join(ROOT, "bench", "out")
        os.makedirs(out, exist_ok=True)
        wd.size(1280, 900)
        wd.go(f"{base}/ui/")
        wd.shot(os.path.join(out, f"overview-{n}.png"))
        wd.size(375, 800)
        wd.go(f"{base}/ui/")
        narrow = wd.js("return document.documentElement.scrollWidth")
        wd.shot(os.path.join(out, f"overview-{n}-375px.png"))
        wd.size(1280, 900)
        wd.go(f"{base}/ui/service?name=s0")
        time.sleep(12)  # two CPU and memory samples for its chart
        wd.go(f"{base}/ui/service?name=s0")
        wd.shot(os.path.join(out, "service.png"))
        wd.go(f"{base}/ui/plan")
        wd.shot(os.path.join(out, "plan.png"))
        wd.quit()
    finally:
        daemon.terminate()
        daemon.wait()
        driver.terminate()
        driver.wait()
        subprocess.run([BERTH, "destroy"], cwd=d, env=env, capture_output=True)
        shutil.rmtree(d, ignore_errors=True)

    total_sent = sum(p for p, _ in sizes.values())
    load = subprocess.run(["cat", "/proc/loadavg"], capture_output=True, text=True).stdout.split()[:3]
    print(f"\nthe dashboard with {n} services ({rows} rows on the page; load {' '.join(load)})\n")
    print(f"{'measure':44} {'value':>12}  goal")
    for path, (packed, raw) in sizes.items():
        print(f"{'bytes of ' + path + ' sent (unpacked)':44} {packed / 1024:9.1f} KB  ({raw / 1024:.1f} KB)")
    print(f"{'page weight, all sent':44} {total_sent / 1024:9.1f} KB  < 150 KB")
    print(f"{'server: render /ui/ (median of 9)':44} {statistics.median(times) * 1000:9.1f} ms")
    print(f"{'browser: to DOMContentLoaded (median of 5)':44} {statistics.median(x[0] for x in nav):9.1f} ms  < 1000 ms")
    print(f"{'browser: to load (median of 5)':44} {statistics.median(x[1] for x in nav):9.1f} ms  < 1000 ms")
    print(f"{'browser: response received (median of 5)':44} {statistics.median(x[2] for x in nav):9.1f} ms")
    print(f"{'browser: first contentful paint (median)':44} {statistics.median(x[3] for x in nav):9.1f} ms  < 1000 ms")
    print(f"{'browser: rows rendered':44} {nav[-1][4]:>12}")
    print(f"{'browser: one live update in place':44} {update:9.1f} ms")
    print(f"{'sse: reconcile asked -> update in place (med)':44} {statistics.median(x[0] for x in sse):9.1f} ms")
    print(f"{'sse: event arrived -> swapped, laid out (med)':44} {statistics.median(x[1] for x in sse):9.1f} ms")
    print(f"{'browser: page width at 375 px':44} {narrow:9} px  <= 375")
    for path, (packed, raw, took) in pages.items():
        print(f"{'bytes of ' + path + ' sent (unpacked)':44} {packed / 1024:9.1f} KB  ({raw / 1024:.1f} KB)")
        print(f"{'server: render ' + path + ' (median of 5)':44} {took * 1000:9.1f} ms")
    print(f"\nscreenshots in {out}")


if __name__ == "__main__":
    main()
