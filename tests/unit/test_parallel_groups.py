"""`make test` runs the slow tiers on pytest-xdist workers with one unit of work per module
(tests/conftest.py). If that grouping silently stops working (pytest 9 + xdist 3.8 did),
module fixtures start once per test and the e2e modules race for the machine's one node; so
check it on two small modules, in a real parallel run."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULES = ["tests/unit/test_feed_cursor.py", "tests/unit/test_cli_lazy.py"]
PARALLEL = ["-n", "2", "--dist", "loadgroup"]  # as `make test` runs the slow tiers


def test_each_module_runs_whole_on_one_worker() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *PARALLEL, "-v", *MODULES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    workers: dict[str, set[str]] = defaultdict(set)
    for worker, nodeid in re.findall(r"\[(gw\d+)\] \[ *\d+%\] PASSED (\S+)", proc.stdout):
        assert "@" in nodeid, f"{nodeid}: not in a work unit"
        workers[nodeid.split("::")[0]].add(worker)
    assert set(workers) == set(MODULES)
    assert all(len(ran_on) == 1 for ran_on in workers.values()), dict(workers)
