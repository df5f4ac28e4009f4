"""``micro new <name>``: write a ready-to-run service project from the templates.

The project has typed messages and a handler (a unary and a server-streaming endpoint), a
``main`` that serves them, tests that use :func:`micro.testing.serve` and pass as generated,
a README, a Dockerfile and a Kubernetes manifest. Names: ``hello-world`` becomes the
package ``hello_world`` and the handler class ``HelloWorld`` (endpoints ``HelloWorld.Call``
and ``HelloWorld.Stream``).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from micro import __version__
from micro.plugins import DISTRIBUTION
from micro.toolkit.cli.app import CliError
from micro.toolkit.cli.templates import FILES

__all__ = ["Project", "create", "project_for", "render"]

_NAME = re.compile(r"^[a-z](?:[a-z0-9-]*[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$")


@dataclass(frozen=True)
class Project:
    """The names one project is generated with."""

    name: str  # directory and service name, e.g. hello-world
    package: str  # hello_world
    handler: str  # HelloWorld
    service: str  # the registered name: [namespace.]name

    def substitute(self, text: str) -> str:
        for token, value in (
            ("__SERVICE__", self.service),
            ("__NAME__", self.name),
            ("__PKG__", self.package),
            ("__CLASS__", self.handler),
            ("__DIST__", DISTRIBUTION),
            ("__VERSION__", __version__),
        ):
            text = text.replace(token, value)
        return text


def project_for(name: str, namespace: str = "") -> Project:
    """Check ``name`` (and ``namespace``) and derive the package and class names.

    Raises:
        CliError: the name is not lowercase letters, digits and dashes.
    """
    if not _NAME.match(name) or "--" in name:
        raise CliError(
            f"invalid service name {name!r}: use lowercase letters, digits and single dashes, "
            "starting with a letter (e.g. hello-world)"
        )
    if namespace and not _NAMESPACE.match(namespace):
        raise CliError(f"invalid namespace {namespace!r}: use e.g. go.micro.srv")
    package = name.replace("-", "_")
    handler = "".join(part.capitalize() for part in name.split("-"))
    service = f"{namespace}.{name}" if namespace else name
    return Project(name, package, handler, service)


def render(project: Project) -> dict[str, str]:
    """Relative path -> file content for ``project``."""
    return {project.substitute(path): project.substitute(body) for path, body in FILES.items()}


def create(args: argparse.Namespace) -> int:
    """Write the project into ``<args.dir>/<args.name>``; refuses a non-empty directory."""
    project = project_for(args.name, args.namespace)
    root = Path(args.dir) / project.name
    if root.exists() and any(root.iterdir()):
        raise CliError(f"{root} already exists and is not empty")
    files = render(project)
    try:
        for rel, body in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {root}: {exc.strerror or exc}") from None
    print(f"created {root} ({len(files)} files)\n")
    for rel in sorted(files):
        print(f"  {rel}")
    print(
        f"\nnext:\n  cd {root}\n  {'python -m pytest':<30}# the generated tests\n"
        f"  {'micro run ' + project.package:<30}# serve it, reloading on changes\n"
        f"  micro call {project.service} {project.handler}.Call "
        """'{"name": "John"}'""",
        file=sys.stdout,
    )
    return 0
