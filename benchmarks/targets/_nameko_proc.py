"""nameko's two processes, run by file path (not ``-m``) so that eventlet patches first.

    python _nameko_proc.py server --amqp URL --service NAME [--max-workers N]
    python _nameko_proc.py client --amqp URL --service NAME [--concurrency N]
                                  [--seconds S] [--warmup W]

The server prints ``LISTENING <service>`` once its RPC consumer is up and runs until SIGTERM.
The client opens one ``ClusterRpcProxy`` (connection + reply queue) per greenlet, checks the
answer, warms up, keeps ``N`` calls in flight for ``S`` seconds, and prints one JSON object:
``{"check": msg, "latencies": [s, ...], "elapsed": s}``.
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import errno  # noqa: E402
import json  # noqa: E402
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


def run_load(services: list, seconds: float) -> tuple:
    latencies: list = []
    started = time.perf_counter()
    deadline = started + seconds
    threads = [eventlet.spawn(call_loop, service, deadline, latencies) for service in services]
    for thread in threads:
        thread.wait()  # re-raises a failed call
    return latencies, time.perf_counter() - started


def client(args: argparse.Namespace) -> None:
    from nameko.standalone.rpc import ClusterRpcProxy

    config = {"AMQP_URI": args.amqp}
    proxies = [ClusterRpcProxy(config, timeout=30) for _ in range(args.concurrency)]
    try:
        services = [proxy.start()[args.service] for proxy in proxies]
        check = services[0].say_hello(name="John")["msg"]
        if args.warmup > 0:
            run_load(services, args.warmup)
        latencies, elapsed = run_load(services, args.seconds)
    finally:
        for proxy in proxies:
            proxy.stop()
        delete_reply_queues(args.amqp, proxies)
    json.dump({"check": check, "latencies": latencies, "elapsed": elapsed}, sys.stdout)
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
    args = parser.parse_args()
    (serve if args.role == "server" else client)(args)


if __name__ == "__main__":
    main()
