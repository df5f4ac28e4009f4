"""Every code block of README.md runs as written, so the README cannot drift from the code.

Python blocks start with a ``# <file>.py`` line and are written to those files in one
directory: ``greeter.py`` runs as a service, the others run against it. Shell blocks run line
by line in bash, with the project's venv first on the PATH (as after ``source
.venv/bin/activate``); ``PORT`` is the port the greeter logged. ``micro new``'s block runs in
a new venv that installs this project's wheel (built here), without a network.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SERVING = re.compile(rb"greeter serving on ([\d.]+):(\d+)")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int

    @property
    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]


def readme_blocks() -> list[Block]:
    found = re.finditer(r"^```(\w+)\n(.*?)^```$", (ROOT / "README.md").read_text(), re.M | re.S)
    text = (ROOT / "README.md").read_text()
    return [Block(m[1], m[2], text.count("\n", 0, m.start()) + 1) for m in found]


BLOCKS = readme_blocks()
FILES = {b.lines[0][2:]: b.text for b in BLOCKS if b.lang == "python"}


def shell_block(first: str) -> Block:
    (block,) = [b for b in BLOCKS if b.lang == "sh" and b.lines[0].startswith(first)]
    return block


def test_every_block_is_run_by_a_test_here() -> None:
    assert {b.lang for b in BLOCKS} == {"python", "sh"}
    assert set(FILES) == {"greeter.py", "call.py", "events.py", "test_greeter.py"}
    firsts = ["scripts/demo", "source ", "curl ", "micro list", "micro new", "micro proxy"]
    assert sorted(b.lines[0] for b in BLOCKS if b.lang == "sh") == sorted(
        shell_block(first).lines[0] for first in firsts
    )


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MICRO_", "PYTEST_"))}
    base.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        MICRO_MDNS_INTERFACES="127.0.0.1",
        MICRO_SERVER_ADDRESS="127.0.0.1:0",
        COLUMNS="200",
    )
    base.pop("PYTHONPATH", None)
    base.update(extra)
    return base


def bash(line: str, cwd: Path, environ: dict[str, str], timeout: float = 60) -> str:
    done = subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=environ, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def wait_line(proc: subprocess.Popen[bytes], pattern: re.Pattern[bytes]) -> re.Match[bytes]:
    """Read ``proc``'s stderr until a line matches (or fail with what it printed)."""
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if found := pattern.search(line):
            return found
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"never printed {pattern.pattern!r}; got:\n{seen.decode()}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    """Ctrl-C, as a person stops it (SIGKILL after 15 s); returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    if proc.stderr is not None:
        proc.stderr.close()
    return proc.wait()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("readme")
    for name, text in FILES.items():
        (where / name).write_text(text)
    return where


@pytest.fixture(scope="module")
def greeter(workdir: Path) -> Iterator[int]:
    """``python greeter.py`` running; yields the port it logged."""
    with subprocess.Popen(
        [sys.executable, "greeter.py"], cwd=workdir, env=env(), stderr=subprocess.PIPE
    ) as proc:
        try:
            yield int(wait_line(proc, SERVING)[2])
        finally:
            assert stop(proc) == 0


def test_quick_start_demo_runs() -> None:
    block = shell_block("scripts/demo")
    assert [line.split()[0] for line in block.lines] == ["scripts/demo", "scripts/test"]
    # scripts/test is the command running this test: only the demo is run here
    out = bash("scripts/demo", ROOT, env(), timeout=120)
    assert "Hello John" in out
    assert re.search(r"greeter node \S+ is gone from the registry", out)


def test_activate_puts_micro_on_the_path() -> None:
    (line,) = shell_block("source ").lines
    command = line.split("#")[0].strip()
    found = bash(f"{command} && command -v micro python", ROOT, env(PATH=os.defpath))
    assert found.split() == [str(ROOT / ".venv/bin/micro"), str(ROOT / ".venv/bin/python")]


def test_greeter_answers_the_call_snippet(workdir: Path, greeter: int) -> None:
    out = bash(f"{shlex.quote(sys.executable)} call.py", workdir, env())
    assert out == "{'msg': 'Hello John'}\n"


def test_curl_reaches_the_port_the_greeter_logged(workdir: Path, greeter: int) -> None:
    command = shell_block("curl ").text.replace("PORT", str(greeter))
    assert bash(command, workdir, env()).strip() == '{"msg":"Hello John"}'


def test_events_snippet_delivers_its_event(workdir: Path) -> None:
    out = bash(f"{shlex.quote(sys.executable)} events.py", workdir, env())
    assert out == "user created: 1\n"


def test_testing_snippet_passes_as_described(workdir: Path) -> None:
    command = "python -m pytest -p asyncio -o asyncio_mode=auto test_greeter.py"
    assert command in " ".join((ROOT / "README.md").read_text().split())
    out = bash(f"{command} -q -p no:cacheprovider", workdir, env())
    assert "1 passed" in out


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_toolkit_lines_against_the_running_greeter(workdir: Path, greeter: int) -> None:
    lines = [line.split("  #")[0].strip() for line in shell_block("micro list").lines]
    expect = {
        "micro list services": "greeter",
        "micro get service greeter": "Greeter.SayHello",
        "micro call greeter Greeter.SayHello": "Hello John",
        "micro health greeter": "greeter",
        "curl http://127.0.0.1:8080/greeter/say-hello": '{"msg":"Hello John"}',
    }
    gateway: subprocess.Popen[bytes] | None = None
    try:
        for line in lines:
            if line.endswith("&"):
                assert port_is_free(8080), "the README's gateway port 8080 is taken here"
                gateway = subprocess.Popen(
                    ["bash", "-c", f"exec {line.removesuffix('&')}"], cwd=workdir, env=env(),
                    stderr=subprocess.PIPE,
                )  # fmt: skip
                wait_line(gateway, re.compile(rb"127\.0\.0\.1:8080"))
                continue
            (want,) = [v for k, v in expect.items() if line.startswith(k)]
            assert want in bash(line, workdir, env()), line
    finally:
        if gateway is not None:
            stop(gateway)
    assert gateway is not None


def test_proxy_lines_against_the_running_greeter(workdir: Path, greeter: int) -> None:
    # the README's proxy on a free loopback port (not every interface), with a certificate for
    # 127.0.0.1 from a CA made here, which the laptop line is told to trust (the README's
    # proxy.example.com would have a public CA's certificate)
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    cert = ca.issue_cert("127.0.0.1", "proxy.example.com")
    cert.cert_chain_pems[0].write_to_path(str(workdir / "proxy.pem"))
    cert.private_key_pem.write_to_path(str(workdir / "proxy.key"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve, call = (line.strip() for line in shell_block("micro proxy").lines)
    assert serve.endswith("&")
    assert " --address :8081 " in serve
    serve = serve.removesuffix("&").replace(" :8081 ", f" 127.0.0.1:{port} ")
    assert "https://proxy.example.com:8081 " in call
    call = call.replace("https://proxy.example.com:8081 ", f"https://127.0.0.1:{port} ")
    call = call.replace(" --proxy-token ", " --proxy-tls-ca ca.pem --proxy-token ")
    proxy = subprocess.Popen(
        ["bash", "-c", f"exec {serve}"], cwd=workdir, env=env(), stderr=subprocess.PIPE
    )
    try:
        wait_line(proxy, re.compile(rf"127\.0\.0\.1:{port}".encode()))
        assert "Hello John" in bash(call, workdir, env())
        refused = subprocess.run(
            ["bash", "-c", call.replace("s3cret", "wrong")], cwd=workdir, env=env(),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert refused.returncode != 0
        assert "Hello John" not in refused.stdout
    finally:
        assert stop(proxy) == 0


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    uv = str(VENV_BIN / "uv")
    subprocess.run(
        [uv, "build", "--wheel", "--offline", "-q", "-o", str(out)], cwd=ROOT, check=True
    )
    (found,) = out.glob("pymicro_toolkit-*.whl")
    return found


def fresh_venv(where: Path, wheel: Path) -> Path:
    """A new venv with this wheel and, from uv's cache (no network), the locked versions of
    what the project will ask pip for (the lock's ``scaffold`` group)."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    pins = where.parent / "pylock.toml"
    uv = str(VENV_BIN / "uv")
    subprocess.run(
        [uv, "export", "--frozen", "--format", "pylock.toml", "--no-default-groups",
         "--group", "scaffold", "--no-emit-project", "-q", "-o", str(pins)],
        cwd=ROOT, check=True,
    )  # fmt: skip
    python = ["--python", str(where / "bin/python")]
    subprocess.run([uv, "pip", "install", "--offline", "-q", *python, "-r", str(pins)], check=True)
    subprocess.run([uv, "pip", "install", "--offline", "-q", "--no-deps", *python, str(wheel)])
    return where / "bin"


def test_micro_new_project_installs_the_wheel_passes_its_tests_and_runs(
    tmp_path: Path, wheel: Path
) -> None:
    lines = [line.split("  #")[0].strip() for line in shell_block("micro new").lines]
    assert lines == [
        "micro new hello && cd hello",
        "pip install -e '.[dev]'",
        "python -m pytest",
        "micro run hello",
    ]
    bin_dir = fresh_venv(tmp_path / "venv", wheel)
    offline = env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PIP_NO_INDEX="1",  # everything must come from the venv and the wheel: no network
        PIP_FIND_LINKS=str(wheel.parent),
        PIP_NO_BUILD_ISOLATION="0",  # pip's spelling of "build with the venv's hatchling"
    )
    bash(lines[0], tmp_path, offline)
    project = tmp_path / "hello"
    bash(lines[1], project, offline, timeout=120)
    where = bash("python -c 'import micro, sys; print(micro.__file__)'", tmp_path, offline)
    assert where.startswith(str(tmp_path / "venv")), where  # this wheel's micro, not src/
    out = bash(f"{lines[2]} -q -p no:cacheprovider", project, offline)
    assert "3 passed" in out

    with subprocess.Popen(
        ["bash", "-c", f"exec {lines[3]}"], cwd=project, env=offline, stderr=subprocess.PIPE
    ) as proc:
        try:
            wait_line(proc, re.compile(rb"hello serving on 127\.0\.0\.1:\d+"))
            call = 'micro call hello Hello.Call \'{"name": "README"}\''
            assert "Hello README" in bash(call, project, offline)
        finally:
            assert stop(proc) == 0

    # The Dockerfile's install line takes this library from ./wheels, not from PyPI
    (run_line,) = [
        line[4:] for line in (project / "Dockerfile").read_text().splitlines()
        if line.startswith("RUN pip install")
    ]  # fmt: skip
    shutil.copy(wheel, project / "wheels")
    bash("pip uninstall -q -y pymicro-toolkit hello", project, offline)
    bash(run_line, project, offline, timeout=120)
    shown = bash("pip show pymicro-toolkit hello", tmp_path, offline)
    assert "Name: pymicro-toolkit" in shown
    assert "Name: hello" in shown
