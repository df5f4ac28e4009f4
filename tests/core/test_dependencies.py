"""Every third-party module the package imports belongs to a distribution pyproject.toml names.

A module that only arrives as a dependency of a dependency (aiormq through aio-pika) breaks
the day that dependency stops needing it; naming it in the extra keeps the install whole.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level third-party module -> the package files that import it."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "src" / "micro").rglob("*.py")):
        for name in _top_level_imports(path):
            if name != "micro" and name not in sys.stdlib_module_names:
                found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    names = {re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req) for req in requirements}
    return {_normalize(match.group()) for match in names if match}


def test_every_imported_distribution_is_declared() -> None:
    declared = _declared()
    distributions = packages_distributions()
    missing = []
    for module, files in sorted(_third_party_imports().items()):
        owners = {_normalize(dist) for dist in distributions.get(module, [])}
        if not owners & declared:
            missing.append(f"{module} (from {sorted(owners) or 'nothing installed'}): {files[0]}")
    assert not missing, "imported but not declared in pyproject.toml:\n" + "\n".join(missing)


def test_the_walk_sees_lazy_and_driver_imports() -> None:
    imports = _third_party_imports()
    assert "msgspec" in imports  # the core dependency
    assert "aiormq" in imports  # imported inside the rabbitmq backend only
    assert "asyncio" not in imports
