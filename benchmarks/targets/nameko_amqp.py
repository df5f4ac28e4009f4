"""``nameko``: nameko 2.x RPC over RabbitMQ (eventlet), server and client in subprocesses.

nameko cannot share the asyncio process, so ``_nameko_proc.py`` runs both sides: a
``ServiceRunner`` server (what ``nameko run`` does, with a readiness line) and an eventlet
client that reports its latencies as JSON. Each run uses a unique service name (hence a
unique ``rpc-<name>`` queue), deleted afterwards.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kombu

from benchmarks import harness
from benchmarks.harness import (
    EXPECTED_MSG,
    CpuUse,
    Measurement,
    Options,
    ServerProcess,
    Target,
    log,
)

PROC = Path(__file__).with_name("_nameko_proc.py")


class NamekoTarget(Target):
    name = "nameko"
    title = "nameko 2.x RPC over RabbitMQ (ClusterRpcProxy)"
    import_probes = {"nameko": "import eventlet; eventlet.monkey_patch(); import nameko.rpc"}
    loop_note = "eventlet (client and server)"

    def __init__(self) -> None:
        self.service = f"bench_greeter_{os.getpid()}_{secrets.token_hex(3)}"

    def unavailable(self, options: Options) -> str | None:
        for module in ("eventlet", "nameko"):  # not imported here: eventlet must patch first
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        url = urlsplit(options.amqp_url)
        address = (url.hostname or "127.0.0.1", url.port or 5672)
        try:
            socket.create_connection(address, timeout=1.0).close()
        except OSError as exc:
            return f"RabbitMQ not reachable at {address[0]}:{address[1]} ({exc})"
        return None

    def broker_info(self, options: Options) -> str | None:
        try:
            with kombu.Connection(options.amqp_url, connect_timeout=2) as conn:
                conn.connect()
                props = conn.connection.server_properties
        except Exception:
            return None
        return f"{props.get('product', 'AMQP broker')} {props.get('version', '?')}"

    def start_server(self, options: Options) -> ServerProcess:
        argv = [options.python, str(PROC), "server", "--amqp", options.amqp_url]
        argv += ["--service", self.service, "--max-workers", str(options.nameko_max_workers)]
        return ServerProcess(self.name, argv, options).start()

    async def run_modes(
        self, server: ServerProcess, options: Options, modes: Iterable[str]
    ) -> list[Measurement]:
        results = []
        for mode in modes:
            concurrency = options.concurrency_for(mode)
            log(
                f"{self.name}: {mode} with {concurrency} in flight "
                f"(eventlet client subprocess, warm-up {options.warmup:g} s, "
                f"run {options.seconds:g} s)"
            )
            report = await self._run_client(options, concurrency, server.pid)
            if report["check"] != EXPECTED_MSG:
                raise AssertionError(f"nameko: expected {EXPECTED_MSG!r}, got {report['check']!r}")
            results.append(
                Measurement.from_latencies(
                    self.name,
                    mode,
                    concurrency,
                    report["latencies"],
                    report["elapsed"],
                    CpuUse(
                        client_s=report["client_cpu_s"],
                        server_s=report["server_cpu_s"],
                        other_s=report["other_cpu_s"],
                    ),
                )
            )
        return results

    async def _run_client(
        self, options: Options, concurrency: int, server_pid: int
    ) -> dict[str, Any]:
        argv = [str(PROC), "client", "--amqp", options.amqp_url, "--service", self.service]
        argv += ["--concurrency", str(concurrency), "--server-pid", str(server_pid)]
        argv += ["--seconds", str(options.seconds), "--warmup", str(options.warmup)]
        proc = await asyncio.create_subprocess_exec(
            options.python,
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=harness.subprocess_env(),
            start_new_session=True,
        )
        harness.track(proc.pid)
        try:
            timeout = options.seconds + options.warmup + 60.0
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        finally:
            if proc.returncode is None:
                harness.kill_group(proc.pid)
                await proc.wait()
            harness.untrack(proc.pid)
        if proc.returncode != 0:
            tail = "\n".join(err.decode(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"nameko client exited with {proc.returncode}:\n{tail}")
        return json.loads(out)

    def cleanup(self, options: Options) -> None:
        """Delete the durable ``rpc-<service>`` queue this run declared."""
        try:
            with kombu.Connection(options.amqp_url, connect_timeout=2) as conn:
                conn.default_channel.queue_delete(f"rpc-{self.service}")
        except Exception as exc:  # cleanup must not hide the results
            log(f"nameko: could not delete queue rpc-{self.service}: {exc}")


TARGET = NamekoTarget()
