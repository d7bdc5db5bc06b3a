#!/usr/bin/env python3
"""Issue 27's table: each project class of tests/fixtures/projects/ (and the
examples) deployed with only service, runtime and package, one project at a
time, each with a fresh state directory (so pip downloads cold), timing:

- plan: `berth plan` (reads the package, resolves the dependencies to wheels);
- apply: the cold build (dependencies stage, code layer) and start behind the
  health gate;
- answers: `GET` on the URL `status --json` names, as the app user;
- code-only: one line of the entry file edited, then `berth apply` again.

Needs the bases (`berth baseimages python3.11 node22`). Prints a Markdown table.
The PyTorch class downloads gigabytes: it runs only with --heavy (or --only).

    bench/projects.py [--berth target/debug/berth] [--only NAME ...] [--heavy]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "projects")

# name -> (directory, runtime, the file a code-only change edits, extra YAML)
PROJECTS = {
    "poetry-wsgi": (FIXTURES, "python3.11", "app.py", ""),
    "uv-asgi": (FIXTURES, "python3.11", "main.py", ""),
    "setupcfg-procfile": (FIXTURES, "python3.11", "notes_srv/__main__.py", ""),
    "pipenv-lock": (FIXTURES, "python3.11", "service.py", ""),
    "module-main": (FIXTURES, "python3.11", "src/hello/__main__.py", ""),
    "setup-py": (FIXTURES, "python3.11", "server.py", ""),
    "sqlite-notes": (FIXTURES, "python3.11", "notes.py", "    keeps: [/data]\n"),
    "computed-setup": (FIXTURES, "python3.11", "server.py", ""),
    "sdist-only": (FIXTURES, "python3.11", "app.py", ""),
    "sklearn-model": (FIXTURES, "python3.11", "serve.py", ""),
    "pinned-template": (FIXTURES, "python3.11", "main.py", ""),
    "torch-model": (FIXTURES, "python3.11", "serve.py", ""),
    "python-fastapi": (os.path.join(ROOT, "examples"), "python3.11", "main.py", ""),
    "node-hello": (os.path.join(ROOT, "examples"), "node22", "server.js", ""),
}


def timed(berth, args, cwd, env):
    started = time.monotonic()
    out = subprocess.run([berth, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - started
    if out.returncode != 0:
        raise RuntimeError(f"berth {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
    return took, out.stdout


def answer(berth, cwd, env, service):
    _, status = timed(berth, ["status", "--json"], cwd, env)
    url = next(r["url"] for r in json.loads(status) if r["service"] == service)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
        return r.status, body.get("uid")


# Large downloads (PyTorch is gigabytes): only with --heavy or --only.
HEAVY = {"torch-model"}


def pack_sdist(links):
    """The sdist-only class's dependency, packed from tests/fixtures/sdists/
    as a source distribution in a find-links directory."""
    import tarfile
    os.makedirs(links, exist_ok=True)
    name = "berth-fixture-greeting-1.0"
    with tarfile.open(os.path.join(links, name + ".tar.gz"), "w:gz") as t:
        t.add(os.path.join(ROOT, "tests", "fixtures", "sdists", "greeting"), arcname=name)


def one(berth, name):
    base, runtime, edit, extra = PROJECTS[name]
    tmp = tempfile.mkdtemp(prefix=f"berth-bench-{name}-")
    try:
        shutil.copytree(os.path.join(base, name), os.path.join(tmp, name))
        project = f"bench-{name}"
        with open(os.path.join(tmp, "services.yaml"), "w") as f:
            f.write(f"project: {project}\nservices:\n  {name}:\n    runtime: {runtime}\n    package: {name}\n{extra}")
        env = dict(os.environ, BERTH_STATE_DIR=os.path.join(tmp, ".state"), NO_COLOR="1")
        if name == "sdist-only":
            pack_sdist(os.path.join(tmp, "links"))
            env["PIP_FIND_LINKS"] = os.path.join(tmp, "links")
        t_plan, plan = timed(berth, ["plan"], tmp, env)
        entry = next((l.strip() for l in plan.splitlines() if "starts with" in l), "")
        t_apply, _ = timed(berth, ["apply"], tmp, env)
        status, uid = answer(berth, tmp, env, name)
        path = os.path.join(tmp, name, edit)
        with open(path, "a") as f:
            f.write("\n// edited\n" if path.endswith(".js") else "\n# edited\n")
        t_code, _ = timed(berth, ["apply"], tmp, env)
        status2, _ = answer(berth, tmp, env, name)
        timed(berth, ["destroy", "--volumes"], tmp, env)
        return {
            "name": name, "plan": t_plan, "apply": t_apply, "answers": f"{status} as uid {uid}",
            "code": t_code, "after": status2, "entry": entry,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", default=os.path.join(ROOT, "target", "debug", "berth"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--heavy", action="store_true", help="also the classes with gigabytes to download")
    args = ap.parse_args()
    rows = []
    for name in args.only or [n for n in PROJECTS if args.heavy or n not in HEAVY]:
        try:
            rows.append(one(args.berth, name))
        except Exception as e:  # one failed class is a row, not the end of the table
            rows.append({"name": name, "error": str(e).splitlines()[0]})
        print(rows[-1], file=sys.stderr)
    print("| project | plan (cold) | apply (cold build) | answers | code-only apply | how it starts |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['name']} | failed: {r['error']} | | | | |")
            continue
        print(f"| {r['name']} | {r['plan']:.1f} s | {r['apply']:.1f} s | {r['answers']} | "
              f"{r['code']:.1f} s (then {r['after']}) | {r['entry']} |")


if __name__ == "__main__":
    main()
