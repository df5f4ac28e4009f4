"""``micro new`` (its project passes its own tests and runs) and ``micro run`` (reloads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from micro.toolkit.cli.app import CliError
from micro.toolkit.cli.scaffold import project_for, render
from tests.toolkit.cli.conftest import MICRO, base_env, micro, micro_json, unique, wait_registered

pytestmark = pytest.mark.integration


def test_project_names() -> None:
    project = project_for("hello-world", "go.micro.srv")
    assert (project.package, project.handler, project.service) == (
        "hello_world",
        "HelloWorld",
        "go.micro.srv.hello-world",
    )
    for bad in ("Hello", "1x", "a--b", "x-", "a_b", ""):
        with pytest.raises(CliError, match="invalid service name"):
            project_for(bad)
    tokens = ("__SERVICE__", "__NAME__", "__PKG__", "__CLASS__")
    files = render(project)
    assert "hello_world/handler.py" in files
    assert not [t for body in files.values() for t in tokens if t in body]
    assert "class HelloWorld:" in files["hello_world/handler.py"]


def test_new_project_passes_its_tests_and_runs(tmp_path: Path) -> None:
    name = unique("svc")
    done = micro("new", name, "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    root = tmp_path / name
    pkg = name.replace("-", "_")
    for rel in ("README.md", "Dockerfile", "k8s/deployment.yaml", f"{pkg}/handler.py"):
        assert (root / rel).is_file(), rel

    again = micro("new", name, "--dir", str(tmp_path))
    assert again.returncode == 1
    assert "already exists" in again.stderr

    env = base_env(PYTEST_ADDOPTS="-p no:pytest_nameko -p no:cacheprovider")
    env.pop("PYTHONPATH")
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"], cwd=root, env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout

    for doc in yaml.safe_load_all((root / "k8s" / "deployment.yaml").read_text()):
        kubernetes_validate.validate(doc, "1.30", strict=True)

    server = subprocess.Popen(  # the project directory, run from outside it
        [MICRO, "run", "--no-reload", str(root)], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_registered(name)
        handler = project_for(name).handler
        rsp = micro_json("call", name, f"{handler}.Call", '{"name": "New"}')
        assert rsp == {"msg": "Hello New"}
        counts = micro_json("stream", name, f"{handler}.Stream", '{"count": 2}')
        assert counts == [{"count": 0}, {"count": 1}]
    finally:
        server.send_signal(2)  # micro run passes Ctrl-C on to the service, then exits
        assert server.wait(timeout=20) == 0


SERVICE = """
import sys
import micro

class Version:
    async def get(self) -> dict[str, str]:
        return {"version": "VERSION"}

service = micro.Service()
service.handle(Version())
service.run(sys.argv[1:])
"""


def _version(name: str) -> str | None:
    done = micro("-o", "json", "call", name, "Version.Get", "{}", "--timeout", "2")
    return json.loads(done.stdout)["version"] if done.returncode == 0 else None


def _wait_version(name: str, want: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _version(name) != want:
        assert time.monotonic() < deadline, f"{name} never answered {want}"
        time.sleep(0.2)


@pytest.mark.slow
def test_run_restarts_the_service_when_a_file_changes(tmp_path: Path) -> None:
    name = unique("run")
    script = tmp_path / "service.py"
    script.write_text(SERVICE.replace("VERSION", "one"))
    with subprocess.Popen(
        [MICRO, "run", str(script), "--", "--server_name", name],
        env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            _wait_version(name, "one")
            script.write_text(SERVICE.replace("VERSION", "two"))
            _wait_version(name, "two")
            proc.send_signal(2)  # Ctrl-C stops the service and the watcher
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.stderr is not None
        log = proc.stderr.read()
    assert "service.py changed; restarting" in log
    assert _version(name) is None  # the child is gone too


def test_run_rejects_what_it_cannot_run(tmp_path: Path) -> None:
    done = micro("run", str(tmp_path / "missing.py"))
    assert done.returncode == 1
    assert "no such file" in done.stderr
    done = micro("run", "no_such_module_here")
    assert done.returncode == 1
    assert "no such file or module: no_such_module_here" in done.stderr
    os.mkdir(tmp_path / "pkg")
    done = micro("run", str(tmp_path / "pkg"))
    assert "has no __main__.py and no package with one" in done.stderr
    for name in ("one", "two"):
        (tmp_path / "pkg" / name).mkdir()
        (tmp_path / "pkg" / name / "__init__.py").write_text("")
        (tmp_path / "pkg" / name / "__main__.py").write_text("")
    done = micro("run", str(tmp_path / "pkg"))
    assert "holds several runnable packages (one, two)" in done.stderr
