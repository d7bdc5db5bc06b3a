#!/usr/bin/env python3
"""berth vs `docker stack deploy` on the swarm lab, measured in the same run.

For N = 10 and 50 equivalent services (busybox httpd from the lab registry,
one replica each, 2 CPUs / 4 GiB limits, start-first updates that roll back
on failure), written both as services.yaml (`engine: swarm`) and as a stack
file:
  - apply from nothing   berth apply (returns once every task ran 5 s)
                         vs docker stack deploy (returns at once) + the wait
                         until every service runs all its tasks
  - one-service change   berth apply vs docker stack deploy + the wait until
                         that service's update completed
and, for the change, how many services each one updated (Version.Index moved).
Prints the times and berth/stack ratios.

Usage: sudo bench/swarm_bench.py [N ...]   (needs target/release/berth, or the
debug build, and root for scripts/swarm-lab)
"""
import json, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release", "berth")
BERTH = RELEASE if os.path.exists(RELEASE) else os.path.join(ROOT, "target", "debug", "berth")
LAB = os.path.join(ROOT, "scripts", "swarm-lab")
CMD = ["sh", "-c", "echo $GREETING > /tmp/index.html && exec httpd -f -p 8000 -h /tmp"]


def sh(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"{cmd} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def write_specs(d, n, registry, image, greeting0):
    with open(os.path.join(d, "services.yaml"), "w") as f:
        f.write(f"project: bench\nengine: swarm\nregistry: {registry}\nservices:\n")
        for i in range(n):
            g = greeting0 if i == 0 else "hi"
            f.write(f"  s{i}:\n    image: {image}\n    command: {json.dumps(CMD)}\n"
                    f"    env: {{ GREETING: {g} }}\n    health: {{ none: true }}\n")
    with open(os.path.join(d, "stack.yml"), "w") as f:
        f.write("version: '3.8'\nservices:\n")
        for i in range(n):
            g = greeting0 if i == 0 else "hi"
            f.write(f"  s{i}:\n    image: {image}\n    command: {json.dumps(CMD)}\n"
                    f"    environment: {{ GREETING: {g} }}\n    init: true\n"
                    "    networks: [global]\n"
                    "    deploy:\n      replicas: 1\n"
                    "      resources: { limits: { cpus: '2', memory: 4g }, reservations: { memory: 1g } }\n"
                    "      update_config: { parallelism: 1, order: start-first, failure_action: rollback, monitor: 5s }\n"
                    "      restart_policy: { condition: any, delay: 1s }\n")
        f.write("networks:\n  global:\n    driver: overlay\n    attachable: true\n")


def services(docker, label):
    out = sh(docker + ["service", "ls", "--filter", f"label={label}", "--format", "{{.Name}} {{.Replicas}}"])
    return dict(l.split() for l in out.splitlines())


def indexes(docker, names):
    return {n: sh(docker + ["service", "inspect", "--format", "{{.Version.Index}}", n]).strip() for n in names}


def wait_until(ok, limit=600):
    start = time.perf_counter()
    while not ok():
        if time.perf_counter() - start > limit:
            sys.exit("timed out")
        time.sleep(0.1)


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    ns = [int(a) for a in sys.argv[1:]] or [10, 50]
    lab_dir = tempfile.mkdtemp(prefix="berth-swarm-bench-")
    env = dict(os.environ, BERTH_LAB_DIR=os.path.join(lab_dir, "lab"))
    t0 = time.perf_counter()
    out = sh([LAB, "up", "3"], env=env)
    print(f"lab up: {time.perf_counter() - t0:.1f} s (3 nodes)", flush=True)
    lab = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    host, registry = lab["DOCKER_HOST"], lab["BERTH_LAB_REGISTRY"]
    docker = ["docker", "-H", host]
    image = f"{registry}/bench-busybox:1"
    try:
        sh(["sh", "-c", f"docker save berth-local/busybox:stable | docker -H {host} load -q && "
                        f"docker -H {host} tag berth-local/busybox:stable {image} && docker -H {host} push -q {image}"])
        benv = dict(os.environ, DOCKER_HOST=host, NO_COLOR="1")
        rows = []
        for n in ns:
            d = tempfile.mkdtemp(prefix=f"berth-swarm-bench-{n}-")
            benv["BERTH_STATE_DIR"] = os.path.join(d, ".state")
            write_specs(d, n, registry, image, "hi")
            berth = lambda *a: sh([BERTH, *a], cwd=d, env=benv)
            # berth: from nothing, one change, gone; then the stack alone (both
            # at once would not fit the nodes' memory at N = 50).
            b_new = timed(lambda: berth("apply"))
            b_names = list(services(docker, "berth.project=bench"))
            b_before = indexes(docker, b_names)
            write_specs(d, n, registry, image, "changed")
            b_change = timed(lambda: berth("apply"))
            b_moved = sum(1 for k, v in indexes(docker, b_names).items() if b_before[k] != v)
            berth("destroy")
            write_specs(d, n, registry, image, "hi")
            s_cmd = timed(lambda: sh(docker + ["stack", "deploy", "-c", "stack.yml", "stk"], cwd=d))
            s_new = s_cmd + timed(lambda: wait_until(lambda: (lambda s: len(s) == n and all(r == "1/1" for r in s.values()))(
                services(docker, "com.docker.stack.namespace=stk"))))
            s_names = list(services(docker, "com.docker.stack.namespace=stk"))
            s_before = indexes(docker, s_names)
            write_specs(d, n, registry, image, "changed")

            def s0_done():
                state = sh(docker + ["service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", "stk_s0"]).strip()
                return state == "completed"
            s_change = timed(lambda: (sh(docker + ["stack", "deploy", "-c", "stack.yml", "stk"], cwd=d), wait_until(s0_done)))
            s_moved = sum(1 for k, v in indexes(docker, s_names).items() if s_before[k] != v)
            rows.append((n, b_new, s_cmd, s_new, b_change, s_change, b_moved, s_moved))
            print(f"N={n}: from nothing berth {b_new:.1f} s, stack {s_new:.1f} s (its command {s_cmd:.1f} s); "
                  f"one change berth {b_change:.1f} s ({b_moved} updated), stack {s_change:.1f} s ({s_moved} updated)", flush=True)
            sh(docker + ["stack", "rm", "stk"])
            wait_until(lambda: not services(docker, "com.docker.stack.namespace=stk"))
        print(f"\nberth: {os.path.relpath(BERTH, ROOT)}; each figure one run; "
              "berth's apply includes its 5 s steadiness check per rollout")
        print(f"{'N':>4}  {'from nothing: berth':>20} {'stack':>7} {'ratio':>6}   {'one change: berth':>18} {'stack':>7} {'ratio':>6}   updated berth/stack")
        for n, b_new, _, s_new, b_ch, s_ch, b_m, s_m in rows:
            print(f"{n:>4}  {b_new:>18.1f} s {s_new:>5.1f} s {b_new / s_new:>6.2f}   {b_ch:>16.1f} s {s_ch:>5.1f} s {b_ch / s_ch:>6.2f}   {b_m}/{s_m}")
    finally:
        subprocess.run([LAB, "down"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
