"""``micro run``: run a service as a child process and restart it when its files change.

Like ``faststream run --reload``: the target is a ``.py`` file, a package or directory with
a ``__main__.py``, a project directory holding one such package (``micro new``'s layout), or
a module (``python -m``); its directory (the current one for a module) is watched with
watchfiles for Python file changes. A restart sends SIGTERM, so the service deregisters and
drains as usual, and SIGKILL only if it has not exited after ``GRACE`` s. A child that
crashes is restarted on the next change. Ctrl-C or SIGTERM stops both.

Beside the service it serves the ``micro web`` dashboard and the API gateway (``/api/...``)
on one local port, ``127.0.0.1:8083`` by default (:mod:`micro.toolkit.cli.devserver`), and
prints a banner with their URLs, then a line per service that comes or goes in the registry;
``--no-dashboard`` turns that off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from micro.settings import BACKEND_GROUPS, BY_NAME, SettingsError, load
from micro.toolkit.cli.app import CliError, given_flags

if TYPE_CHECKING:
    from micro.toolkit.cli.devserver import DevServer

__all__ = ["GRACE", "Target", "command_for", "run"]

GRACE = 10.0


@dataclass(frozen=True)
class Target:
    """How to start the child: its argv, the directory to watch, and where it imports from."""

    argv: list[str]
    watch: Path
    import_root: Path | None = None  # prepended to the child's PYTHONPATH
    settings: tuple[tuple[str, str], ...] = ()  # env vars of the global options given

    def env(self) -> dict[str, str] | None:
        """The child's environment: ours, with the given global options as their env vars."""
        if self.import_root is None and not self.settings:
            return None
        env = {**os.environ, **dict(self.settings)}
        if self.import_root is not None:
            paths = [str(self.import_root), *filter(None, [os.environ.get("PYTHONPATH")])]
            env["PYTHONPATH"] = os.pathsep.join(paths)
        return env


def command_for(target: str, args: list[str]) -> Target:
    """How to run ``target``: a ``.py`` file, a package or a directory with ``__main__.py``,
    a project directory holding one such package (what ``micro new`` writes), or a module.

    Raises:
        CliError: ``target`` is none of those.
    """
    path = Path(target)
    if path.is_file():
        return Target([sys.executable, str(path), *args], path.resolve().parent)
    if path.is_dir():
        return _directory(path.resolve(), target, args)
    if target.endswith(".py"):
        raise CliError(f"no such file: {target}")
    sys.path.insert(0, os.getcwd())
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError) as exc:
        raise CliError(f"cannot find module {target}: {exc}") from None
    finally:
        sys.path.pop(0)
    if spec is None:
        raise CliError(f"no such file or module: {target}")
    return Target([sys.executable, "-m", target, *args], Path.cwd())


def _is_package(path: Path) -> bool:
    return (path / "__init__.py").is_file() and (path / "__main__.py").is_file()


def _directory(path: Path, target: str, args: list[str]) -> Target:
    if _is_package(path):  # run as `python -m pkg`, so that `import pkg` works inside it
        return Target([sys.executable, "-m", path.name, *args], path, path.parent)
    if (path / "__main__.py").is_file():
        return Target([sys.executable, str(path), *args], path)
    packages = sorted(p for p in path.iterdir() if p.is_dir() and _is_package(p))
    if len(packages) == 1:
        (package,) = packages
        return Target([sys.executable, "-m", package.name, *args], package, path)
    if packages:
        names = ", ".join(p.name for p in packages)
        raise CliError(f"{target} holds several runnable packages ({names}): name one")
    raise CliError(f"{target} has no __main__.py and no package with one")


def _say(text: str) -> None:
    print(f"micro run: {text}", file=sys.stderr, flush=True)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _first(*aws: Any) -> set[asyncio.Future[Any]]:
    done, _ = await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)
    return done


async def _serve_dashboard(dev: DevServer) -> bool:
    """Start the dashboard and print the banner; False (said why) if it cannot start."""
    try:
        await dev.start()
    except Exception as exc:  # the service still runs: the dashboard is a convenience
        from micro.toolkit.cli.runtime import one_line

        await dev.close()
        _say(f"the dashboard could not start ({one_line(exc)}); running the service alone")
        return False
    for line in dev.banner():
        dev.say(line)
    return True


async def _supervise(
    target: Target, watch: list[Path], reload: bool, dev: DevServer | None = None
) -> int:
    from watchfiles import PythonFilter, awatch

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if dev is not None and not await _serve_dashboard(dev):
        dev = None
    changes: AsyncIterator[Any] = awatch(*watch, stop_event=stop, watch_filter=PythonFilter())
    stopped = asyncio.ensure_future(stop.wait())
    change: asyncio.Future[Any] | None = None
    try:
        while True:
            proc = await asyncio.create_subprocess_exec(*target.argv, env=target.env())
            exited = asyncio.ensure_future(proc.wait())
            if change is None and reload:
                change = asyncio.ensure_future(anext(changes))
            done = await _first(exited, stopped, *([change] if change else []))
            if stopped in done or not reload:
                if not reload and exited in done:
                    return proc.returncode or 0
                await _stop(proc)
                return 0
            assert change is not None
            if exited in done and change not in done:
                _say(f"exited with code {proc.returncode}; waiting for a change to restart")
                done = await _first(change, stopped)
                if stopped in done:
                    return 0
            files = sorted({Path(p).name for _, p in change.result()})
            _say(f"{', '.join(files)} changed; restarting")
            change = None
            await _stop(proc)
    finally:
        stop.set()
        for future in (stopped, change):
            if future is not None:
                future.cancel()
        if dev is not None:
            await dev.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Run ``args.target`` until Ctrl-C, restarting it on changes unless ``--no-reload``."""
    rest = list(args.args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    given = tuple((BY_NAME[k].env[0], v) for k, v in given_flags(args).items())
    target = dataclasses.replace(command_for(args.target, rest), settings=given)
    watch = [Path(w).resolve() for w in args.watch] or [target.watch]
    for w in watch:
        if not w.is_dir():
            raise CliError(f"cannot watch {w}: not a directory")
    dev = None if args.no_dashboard else _dev_server(args)
    if not args.no_reload:
        _say(f"watching {', '.join(map(str, watch))}")
    return asyncio.run(_supervise(target, watch, not args.no_reload, dev))


def _dev_server(args: argparse.Namespace) -> DevServer | None:
    """The dashboard + gateway server of ``micro run``, its port bound, not started yet
    (None, said why, when the dashboard's libraries are missing).

    Raises:
        CliError: a setting is invalid (exit status 2), or the port cannot be bound.
    """
    try:
        from micro.toolkit.cli import devserver

        settings = load(groups=("web", *BACKEND_GROUPS), flags=given_flags(args))
        devserver.check_options(settings)
    except ImportError as exc:  # the toolkit extra is only partly installed
        _say(f"no dashboard ({exc}); running the service alone")
        return None
    except (SettingsError, ValueError) as exc:
        raise CliError(str(exc), code=2) from None
    sock = devserver.bind(args.address)
    shown = Path.cwd().name if args.target == "." else args.target
    doing = "runs it once" if args.no_reload else "restarts it when its files change"
    title = f"{shown}: {doing}"
    return devserver.DevServer(sock, settings, devserver.printer(), title=title)
