"""Small helpers the benchmarks share: run a child process and read its wall time and peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    output: str


def run_child(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Run:
    """Run ``python args…`` as a child; wall time and the child's own peak RSS (ru_maxrss)."""
    wrapper = (
        "import resource, runpy, sys, json;"
        "sys.argv = sys.argv[1:];"
        "code = 0\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code or 0\n"
        "print(json.dumps({'maxrss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}),"
        " file=sys.stderr)\n"
        "sys.exit(code)"
    )
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{result.stderr[-3000:]}")
    last = result.stderr.strip().splitlines()[-1]
    return Run(seconds, json.loads(last)["maxrss_kb"] / 1024, result.stdout)
