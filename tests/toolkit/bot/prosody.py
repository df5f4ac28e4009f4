"""A private Prosody on a free loopback port, and a slixmpp user client for the tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from slixmpp import JID

DOMAIN = "localhost"
MUC = f"conference.{DOMAIN}"
MType = Literal["chat", "groupchat"]

CONFIG = """\
run_as_root = true
daemonize = false
data_path = "{dir}/data"
pidfile = "{dir}/prosody.pid"
log = {{ info = "{dir}/prosody.log"; error = "{dir}/prosody.err" }}
certificates = "{dir}/certs"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}; legacy_ssl_ports = {{ }}
s2s_ports = {{ }}; component_ports = {{ }}; http_ports = {{ }}; https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "presence"{tls_module} }}
modules_disabled = {{ "s2s" }}
authentication = "internal_plain"
c2s_require_encryption = {require}
allow_unencrypted_plain_auth = true
allow_registration = false
VirtualHost "{domain}"
{ssl}
Component "{muc}" "muc"
    muc_room_locking = false
    restrict_room_creation = false
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    port: int
    cert: Path | None  # the self-signed certificate when it requires STARTTLS


@contextmanager
def prosody(
    root: Path, accounts: dict[str, str], *, tls: bool = False, port: int = 0
) -> Iterator[Server]:
    """Run Prosody in ``root`` with ``accounts`` (user -> password) until the block ends.
    ``port`` and a ``root`` used before: the same server started again."""
    binary, ctl = shutil.which("prosody"), shutil.which("prosodyctl")
    assert binary, "prosody is not installed (Debian package prosody)"
    assert ctl, "prosodyctl is not installed (Debian package prosody)"
    config = root / "prosody.cfg.lua"
    if not config.exists():
        port = port or free_port()
        setup(root, ctl, accounts, tls, port)
    cert = root / "certs" / f"{DOMAIN}.crt" if tls else None
    proc = subprocess.Popen(
        [binary, "-F", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"prosody exited: {(root / 'prosody.err').read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "prosody never opened its port"
                time.sleep(0.1)
        yield Server(port, cert)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def setup(root: Path, ctl: str, accounts: dict[str, str], tls: bool, port: int) -> None:
    """Prosody's config, certificate and accounts in ``root``."""
    (root / "data").mkdir(parents=True)
    certs = root / "certs"
    certs.mkdir()
    ssl_block = ""
    if tls:
        cert, key = certs / f"{DOMAIN}.crt", certs / f"{DOMAIN}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={DOMAIN}",
             "-addext", f"subjectAltName=DNS:{DOMAIN},DNS:{MUC}"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        ssl_block = f'ssl = {{ key = "{key}"; certificate = "{cert}" }}'
    config = root / "prosody.cfg.lua"
    config.write_text(
        CONFIG.format(
            dir=root,
            port=port,
            domain=DOMAIN,
            muc=MUC,
            ssl=ssl_block,
            tls_module='; "tls"' if tls else "",
            require="true" if tls else "false",
        )
    )
    for user, password in accounts.items():
        subprocess.run(
            [ctl, "--config", str(config), "register", user, DOMAIN, password],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip


class User:
    """A slixmpp user: messages received go to ``inbox`` as (type, from, body)."""

    def __init__(self, user: str, password: str, server: Server) -> None:
        from slixmpp import ClientXMPP

        self.jid = f"{user}@{DOMAIN}"
        self.nick = user
        self.server = server
        self.inbox: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        client = self.client = ClientXMPP(f"{self.jid}/test", password)
        for plugin in ("xep_0030", "xep_0045", "xep_0199"):
            client.register_plugin(plugin)
        client.enable_direct_tls = False
        client.enable_starttls = server.cert is not None
        client.enable_plaintext = server.cert is None
        client.plugin["feature_mechanisms"].unencrypted_plain = True
        if server.cert is not None:
            client.ssl_context.load_verify_locations(str(server.cert))
        client.add_event_handler("message", self._received)
        client.add_event_handler("groupchat_message", self._received)

    def _received(self, msg: Any) -> None:
        body = str(msg["body"])
        if body and not msg["delay"]["stamp"]:
            self.inbox.put_nowait((str(msg["type"]), str(msg["from"]), body))

    async def connect(self, timeout: float = 10) -> None:
        started = asyncio.get_running_loop().create_future()
        self.client.add_event_handler("session_start", lambda _: started.set_result(None))
        self.client.connect("127.0.0.1", self.server.port)
        await asyncio.wait_for(started, timeout)
        self.client.send_presence()

    async def join(self, room: str) -> None:
        await self.client.plugin["xep_0045"].join_muc_wait(JID(room), self.nick, maxstanzas=0,
                                                           timeout=10)  # fmt: skip

    def say(self, to: str, body: str, mtype: MType = "chat") -> None:
        self.client.send_message(mto=JID(to), mbody=body, mtype=mtype)

    async def next(self, timeout: float) -> tuple[str, str, str] | None:
        """The next message, or ``None`` when none came within ``timeout``."""
        try:
            return await asyncio.wait_for(self.inbox.get(), timeout)
        except TimeoutError:
            return None

    async def ask(self, to: str, body: str, expect: str, *, mtype: MType = "chat",
                  tries: int = 15) -> str:  # fmt: skip
        """Say ``body`` until a reply containing ``expect`` comes (one try a second)."""
        seen = []
        for _ in range(tries):
            self.say(to, body, mtype)
            deadline = time.monotonic() + 1
            while (left := deadline - time.monotonic()) > 0:
                got = await self.next(left)
                if got is None:
                    break
                if got[1].startswith(f"{to}/{self.nick}"):
                    continue  # the room's echo of our own message
                seen.append(got)
                if expect in got[2]:
                    return got[2]
        raise AssertionError(f"no reply with {expect!r} to {body!r}; got {seen}")

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.client.disconnect(wait=1.0), 3)
        except (TimeoutError, ssl.SSLError, OSError):
            self.client.abort()
