"""``micro new hello && cd hello && micro run``: browse and call the service in one step.

Driven through a pty as a person would: the banner, ``/api/...``, the dashboard and its
``/health``, then Ctrl-C stops the service and the dashboard together.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import httpx
import pexpect
import pytest

from micro.toolkit.cli.scaffold import project_for
from tests.toolkit.cli.conftest import MICRO, base_env, micro, unique

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    return ANSI.sub("", text)


@pytest.mark.slow
def test_micro_run_of_a_new_project_serves_the_dashboard_and_the_api(tmp_path: Path) -> None:
    name = unique("hello")
    assert micro("new", name, "--dir", str(tmp_path)).returncode == 0
    root = tmp_path / name
    env = base_env(TERM="xterm")
    child = pexpect.spawn(
        MICRO, ["run", "--address", "127.0.0.1:0"], cwd=str(root), env=env,
        encoding="utf-8", timeout=30,
    )  # fmt: skip
    child.setwinsize(50, 250)
    try:
        child.expect(r"Dashboard\S*\s+(http://127\.0\.0\.1:\d+)/")
        base = child.match.group(1)
        child.expect(r"API\S*\s+" + re.escape(base) + "/api/<service>/<method>")
        child.expect(r"Health\S*\s+" + re.escape(base) + "/health")
        # the service registers: its line, its page and how to call it
        child.expect("/registry\\?service=" + re.escape(name))
        child.expect(r"curl [^\r\n]*/api/" + re.escape(name) + r"/call")
        curl = _plain(child.after)
        assert """-d '{"name": "John"}'""" in curl

        with httpx.Client(base_url=base, timeout=10) as http:
            called = http.post(f"/api/{name}/call", json={"name": "Pty"})
            assert called.status_code == 200, called.text
            assert called.json() == {"msg": "Hello Pty"}
            missing = http.post(f"/api/{name}/nope", json={})
            assert missing.status_code == 404
            assert http.get("/health").json()["status"] == "ok"
            page = http.get("/")
            assert page.status_code == 200
            assert "text/html" in page.headers["content-type"]
            handler = project_for(name).handler
            listed = http.get(f"/registry?service={name}", headers={"Accept": "application/json"})
            [svc] = listed.json()["services"]
            assert f"{handler}.Call" in {e["name"] for e in svc["endpoints"]}
            # the call page's answer names the node, as in micro web
            body = {"service": name, "endpoint": f"{handler}.Call", "request": {"name": "N"}}
            answered = http.post("/_/call", json=body)
            assert answered.status_code == 200, answered.text
            assert answered.json()["node"]["address"] == svc["nodes"][0]["address"]
        done = subprocess.run(  # the same curl line the banner printed works as printed
            ["sh", "-c", curl.strip()], capture_output=True, text=True, timeout=10, check=False
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"msg": "Hello John"}

        child.sendintr()  # Ctrl-C: the service deregisters, the dashboard closes
        child.expect(pexpect.EOF, timeout=25)
        child.close()
        assert child.exitstatus == 0
        port = int(base.rsplit(":", 1)[1])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert micro("get", "service", name).returncode == 1
    finally:
        child.close(force=True)


def test_micro_run_without_the_dashboard(tmp_path: Path) -> None:
    script = tmp_path / "svc.py"
    script.write_text("import sys\nprint('child ran', flush=True)\nsys.exit(3)\n")
    with socket.socket() as taken:  # its --address would not matter: nothing is bound
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        done = micro("run", "--no-reload", "--no-dashboard", "--address", busy, str(script))
        assert (done.returncode, done.stdout) == (3, "child ran\n")
        assert "Dashboard" not in done.stderr
        refused = micro("run", "--no-reload", "--address", busy, str(script))
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"micro: cannot serve the dashboard on {busy}: ")
    assert "child ran" not in refused.stdout
    bad = micro("run", "--no-reload", "--address", "nowhere", str(script))
    assert bad.returncode == 2
    assert "micro run --address 'nowhere'" in bad.stderr


@pytest.mark.slow
def test_micro_run_with_an_unreachable_registry_runs_the_service_and_exits(
    tmp_path: Path,
) -> None:
    script = tmp_path / "svc.py"
    script.write_text("import sys\nprint('child ran', flush=True)\nsys.exit(3)\n")
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
    done = micro(
        "--registry", "etcd", "--registry-address", dead, "--registry-timeout", "1",
        "run", "--no-reload", "--address", "127.0.0.1:0", str(script), timeout=40,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (3, "child ran\n")
    assert "Dashboard" in done.stderr  # served all the same; its data comes when etcd does
