"""The ``micro`` command line: observe and drive running services.

    micro list services                         micro get service greeter
    micro call greeter Greeter.SayHello '{"name": "John"}'
    micro stream counter Counter.Count '{"to": 3}'
    micro publish user.created '{"id": 1}'      micro health greeter
    micro new helloworld                        micro run helloworld
    micro cli                                   (interactive shell)

Modules: :mod:`.app` (parser, global options, errors; standard library only, so ``--help``
is fast), :mod:`.commands` (the data commands), :mod:`.runtime` (registry and client
shared by commands), :mod:`.output` (rich tables, JSON, spinner), :mod:`.shell`
(``micro cli``), :mod:`.scaffold` (``micro new``), :mod:`.reload` (``micro run``).
Reference: ``docs/cli.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``micro`` with ``argv`` (``sys.argv[1:]`` when None); returns the exit code."""
    from micro.toolkit.cli.app import main as app_main

    return app_main(argv)
