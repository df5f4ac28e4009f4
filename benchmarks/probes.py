"""Start-up costs: how long ``import X`` (or any snippet) takes in a fresh interpreter."""

from __future__ import annotations

import statistics
import subprocess
import time

from benchmarks.harness import REPO_ROOT, subprocess_env


def _time_once(python: str, code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [python, "-c", code],
        check=True,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def import_time_ms(code: str, python: str, runs: int = 7) -> dict[str, float]:
    """Median wall time of ``python -c CODE`` minus that of ``python -c "pass"``.

    Bare and import runs alternate so that drift hits both alike.
    """
    env = subprocess_env()
    _time_once(python, code, env)  # warm the page cache and .pyc files
    bare, loaded = [], []
    for _ in range(runs):
        bare.append(_time_once(python, "pass", env))
        loaded.append(_time_once(python, code, env))
    bare_ms = statistics.median(bare) * 1e3
    loaded_ms = statistics.median(loaded) * 1e3
    return {
        "import_ms": round(loaded_ms - bare_ms, 1),
        "python_startup_ms": round(bare_ms, 1),
        "runs": runs,
    }
