"""mypy --strict over tests/typecheck/check_public_api.py: the public API keeps its types."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_public_api_is_typed() -> None:
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            str(Path(__file__).with_name("check_public_api.py")),
        ]
    )
    assert status == 0, stdout + stderr
