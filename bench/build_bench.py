#!/usr/bin/env python3
"""Building from code: berth vs a hand-written Dockerfile with `docker build`,
measured in the same run on the FastAPI example (examples/python-fastapi).

  - cold build (fresh berth state, no cached layers; the wheels are fetched too)
  - rebuild after a one-line code change (goal: under 20% of cold)
  - `berth plan` with everything cached, on a 10 MB package (goal: under 200 ms, no build)
  - the same cold build and one-line rebuild with `docker build` of a hand-written
    Dockerfile (its wheels fetched beforehand, outside the timing), and the same
    Dockerfile built by BuildKit over the engine's API (what `DOCKER_BUILDKIT=1
    docker build` sends; this machine's docker CLI has no buildx, so its
    `docker build` is the classic builder)

berth builds the dependencies stage with BuildKit (`version=2`) and loads the code as
one layer it writes itself (`docker load`); goal: a cold build no slower than the
hand-written one, a code-only rebuild under 15% of cold.

Usage: bench/build_bench.py   (needs target/release/berth; builds the python3.11 base if missing)
"""
import http.client, io, json, os, shutil, socket, subprocess, sys, tarfile, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.path.join(ROOT, "target", "release", "berth")
EXAMPLE = os.path.join(ROOT, "examples", "python-fastapi")

HANDWRITTEN = """FROM berth-local/python3.11:stable
COPY requirements.txt /tmp/requirements.txt
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /app/.venv && /app/.venv/bin/pip install --no-index --no-cache-dir --find-links /tmp/wheels -r /tmp/requirements.txt
COPY app/ /app/
ENV PATH=/app/.venv/bin:$PATH
USER 10001:10001
CMD ["python3", "main.py"]
"""


def timed(cmd, cwd, env=None):
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{cmd} failed:\n{p.stdout}\n{p.stderr}")
    return dt, p.stdout


class EngineConnection(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=600)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect("/var/run/docker.sock")


def buildkit_build(context_dir, tag):
    """POST /build?version=2 with the context as a tarball; seconds taken."""
    buf = io.BytesIO()
    # The Dockerfile first, in a plain header: BuildKit reads an upload whose
    # first header is a PAX one as a bare Dockerfile.
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(os.path.join(context_dir, "Dockerfile"), arcname="Dockerfile")
        for name in sorted(os.listdir(context_dir)):
            if name != "Dockerfile":
                tar.add(os.path.join(context_dir, name), arcname=name)
    t = time.perf_counter()
    c = EngineConnection()
    c.request("POST", f"/build?version=2&session=bench-{os.getpid()}-{time.time_ns()}&t={tag}&rm=1",
              body=buf.getvalue(), headers={"Content-Type": "application/x-tar"})
    r = c.getresponse()
    for line in r.read().decode().splitlines():
        if '"errorDetail"' in line:
            sys.exit(f"BuildKit build of {tag} failed: {json.loads(line)['errorDetail']}")
    dt = time.perf_counter() - t
    if r.status != 200:
        sys.exit(f"BuildKit build of {tag}: HTTP {r.status}")
    return dt


def drop_images(prefix):
    ids = subprocess.run(["docker", "images", "-q", "--filter", f"reference={prefix}*"], capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rmi", "-f", *set(ids)], capture_output=True)
    subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)
    # BuildKit keeps its own cache of steps, beside the images: a cold build
    # needs it empty (this empties the whole engine's build cache).
    subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)


def drop_berth_images():
    """berth's service images and its dependencies stages: a cold build has neither."""
    drop_images("berth-deps/bbench-")
    drop_images("berth/bbench-")


def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


def main():
    subprocess.run([BERTH, "baseimages", "python3.11"], check=True, capture_output=True)
    work = tempfile.mkdtemp(prefix="berth-build-bench-")
    nonce = str(int(time.time()))
    src = os.path.join(work, "api")
    shutil.copytree(EXAMPLE, src)
    # A dependency set of its own, so no earlier build's cache can serve it.
    edit(os.path.join(src, "pyproject.toml"), '"uvicorn>=0.29",', f'"uvicorn>=0.29",\n    "six",  # {nonce}')
    with open(os.path.join(work, "services.yaml"), "w") as f:
        f.write(f"project: bbench\nservices:\n  api:\n    runtime: python3.11\n    package: api\n")
    env = dict(os.environ, BERTH_STATE_DIR=os.path.join(work, ".state"))
    drop_berth_images()

    r = {}
    r["berth cold build, wheels fetched"], _ = timed([BERTH, "build"], work, env)
    drop_berth_images()
    r["berth cold build"], _ = timed([BERTH, "build"], work, env)
    edit(os.path.join(src, "main.py"), '"fastapi"', '"fastapi (edited)"')
    r["berth rebuild, one-line change"], _ = timed([BERTH, "build"], work, env)
    with open(os.path.join(src, "blob.bin"), "wb") as f:
        f.write(os.urandom(10 << 20))
    timed([BERTH, "build"], work, env)
    plans = []
    for _ in range(5):
        dt, out = timed([BERTH, "plan"], work, env)
        if "build" in out:
            sys.exit(f"a cached plan must not build:\n{out}")
        plans.append(dt)
    r["berth plan, all cached, 10 MB package"] = sorted(plans)[2]

    # The hand-written equivalent, same base, same wheels.
    hw = os.path.join(work, "handwritten")
    os.makedirs(hw)
    shutil.copytree(EXAMPLE, os.path.join(hw, "app"))
    with open(os.path.join(hw, "requirements.txt"), "w") as f:
        f.write(f"fastapi>=0.110\nuvicorn>=0.29\nsix  # {nonce} \n")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", os.path.join(hw, "wheels"),
                    "-r", os.path.join(hw, "requirements.txt")], check=True)
    with open(os.path.join(hw, "Dockerfile"), "w") as f:
        f.write(HANDWRITTEN + f"# {nonce}\n")
    drop_images("bbench-handwritten")
    r["docker build cold"], _ = timed(["docker", "build", "-q", "-t", "bbench-handwritten:1", "."], hw)
    edit(os.path.join(hw, "app", "main.py"), '"fastapi"', '"fastapi (edited)"')
    r["docker build, one-line change"], _ = timed(["docker", "build", "-q", "-t", "bbench-handwritten:2", "."], hw)
    with open(os.path.join(hw, "Dockerfile"), "w") as f:
        f.write(HANDWRITTEN + f"# {nonce} buildkit\n")
    drop_images("bbench-handwritten")
    r["handwritten, BuildKit, cold"] = buildkit_build(hw, "bbench-handwritten:3")
    edit(os.path.join(hw, "app", "main.py"), '"fastapi (edited)"', '"fastapi (edited twice)"')
    r["handwritten, BuildKit, one-line change"] = buildkit_build(hw, "bbench-handwritten:4")

    for k, v in r.items():
        print(f"  {k:<40} {v * 1000:8.0f} ms")
    print(f"  berth rebuild / berth cold:            {r['berth rebuild, one-line change'] / r['berth cold build']:.3f}   (goal: under 0.15)")
    print(f"  docker rebuild / docker cold:          {r['docker build, one-line change'] / r['docker build cold']:.3f}")
    print(f"  berth cold / docker cold:              {r['berth cold build'] / r['docker build cold']:.3f}")
    print(f"  berth rebuild / docker rebuild:        {r['berth rebuild, one-line change'] / r['docker build, one-line change']:.3f}")
    print(f"  berth cold / handwritten BuildKit cold: {r['berth cold build'] / r['handwritten, BuildKit, cold']:.3f}   (goal: at most 1)")
    print(f"  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    drop_berth_images()
    drop_images("bbench-handwritten")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
