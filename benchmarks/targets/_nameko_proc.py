"""nameko's two processes, run by file path (not ``-m``) so that eventlet patches first.

    python _nameko_proc.py server --amqp URL --service NAME [--max-workers N]
    python _nameko_proc.py client --amqp URL --service NAME [--concurrency N]
                                  [--seconds S] [--warmup W] [--server-pid PID]

The server prints ``LISTENING <service>`` once its RPC consumer is up and runs until SIGTERM.
The client opens one ``ClusterRpcProxy`` (connection + reply queue) per greenlet, checks the
answer, warms up, keeps ``N`` calls in flight for ``S`` seconds, and prints one JSON object
with ``check`` (the answer's msg), ``latencies`` (seconds), ``elapsed``, and the CPU seconds
``client_cpu_s``, ``server_cpu_s`` (from ``/proc/<server-pid>/stat``) and ``other_cpu_s``
(the rest of the machine, mostly RabbitMQ).
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import errno  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def serve(args: argparse.Namespace) -> None:
    from nameko.rpc import rpc
    from nameko.runners import ServiceRunner

    class Greeter:
        name = args.service

        @rpc
        def say_hello(self, name):
            return {"msg": f"Hello {name}"}

    runner = ServiceRunner(config={"AMQP_URI": args.amqp, "max_workers": args.max_workers})
    runner.add_service(Greeter)
    runner.start()
    print(f"LISTENING {args.service}", flush=True)
    sys.stdout = sys.stderr
    wait_until_stopped(runner)


def wait_until_stopped(runner) -> None:
    """The shutdown dance of ``nameko run``: SIGTERM stops the runner from a green thread."""
    signal.signal(signal.SIGTERM, lambda *_: eventlet.spawn_n(runner.stop))
    waiter = eventlet.spawn(runner.wait)
    while True:
        try:
            waiter.wait()
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
        except KeyboardInterrupt:
            runner.stop()
        else:
            return


def call_loop(service, deadline: float, latencies: list) -> None:
    clock = time.perf_counter
    while (started := clock()) < deadline:
        service.say_hello(name="John")
        latencies.append(clock() - started)


def server_cpu_seconds(pid: int):
    """User + system CPU time of the server, from ``/proc/<pid>/stat`` (``None``: unknown)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds():
    """User + system CPU time of all processes, from ``/proc/stat`` (as in harness.py)."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system = map(int, stat.readline().split()[1:4])
    except (OSError, ValueError):
        return None
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def delta(before, after):
    return None if before is None or after is None else after - before


def run_load(services: list, seconds: float, server_pid: int = 0) -> dict:
    """Keep one call per service proxy in flight for ``seconds``; latencies and CPU used."""
    latencies: list = []
    busy0, server0, client0 = busy_seconds(), server_cpu_seconds(server_pid), time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    threads = [eventlet.spawn(call_loop, service, deadline, latencies) for service in services]
    for thread in threads:
        thread.wait()  # re-raises a failed call
    elapsed = time.perf_counter() - started
    client = time.process_time() - client0
    server = delta(server0, server_cpu_seconds(server_pid))
    busy = delta(busy0, busy_seconds())
    return {
        "latencies": latencies,
        "elapsed": elapsed,
        "client_cpu_s": client,
        "server_cpu_s": server,
        "other_cpu_s": None if busy is None or server is None else max(0.0, busy - client - server),
    }


def client(args: argparse.Namespace) -> None:
    from nameko.standalone.rpc import ClusterRpcProxy

    config = {"AMQP_URI": args.amqp}
    proxies = [ClusterRpcProxy(config, timeout=30) for _ in range(args.concurrency)]
    try:
        services = [proxy.start()[args.service] for proxy in proxies]
        check = services[0].say_hello(name="John")["msg"]
        if args.warmup > 0:
            run_load(services, args.warmup)
        report = run_load(services, args.seconds, args.server_pid)
    finally:
        for proxy in proxies:
            proxy.stop()
        delete_reply_queues(args.amqp, proxies)
    json.dump({"check": check, **report}, sys.stdout)
    sys.stdout.flush()


def delete_reply_queues(amqp: str, proxies: list) -> None:
    """Reply queues would otherwise linger for nameko's 5-minute ``x-expires``."""
    import kombu

    names = []
    for proxy in proxies:
        queue = getattr(getattr(proxy, "_reply_listener", None), "queue", None)
        if queue is not None:
            names.append(queue.name)
    try:
        with kombu.Connection(amqp, connect_timeout=2) as conn:
            for name in names:
                conn.default_channel.queue_delete(name)
    except Exception as exc:  # tidying up must not lose the measurement
        print(f"could not delete reply queues: {exc}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(prog="_nameko_proc.py")
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--max-workers", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--server-pid", type=int, default=0, help="for its CPU time")
    args = parser.parse_args()
    (serve if args.role == "server" else client)(args)


if __name__ == "__main__":
    main()
