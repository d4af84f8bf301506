"""The serving processes of `--processes N`: started, restarted when they exit (with a
growing delay when they keep exiting at once), stopped. Real child processes; the clock is
the test's, so delays are checked without waiting for them."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from kustos.cli import api_processes
from kustos.cli.api_processes import ServingProcesses, serving_argv

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
QUITTER = [sys.executable, "-c", "raise SystemExit(3)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def procs(clock: Clock) -> Iterator[list[ServingProcesses]]:
    made: list[ServingProcesses] = []
    yield made
    for group in made:
        group.stop(timeout=10)


def _started(
    procs: list[ServingProcesses], argv: list[str], n: int, clock: Clock
) -> ServingProcesses:
    """A started group, stopped by the `procs` fixture at the end of the test."""
    group = ServingProcesses(argv, n, clock=clock)
    procs.append(group)
    group.start()
    return group


def test_n_processes_start_and_stop(procs: list[ServingProcesses], clock: Clock) -> None:
    group = _started(procs, SLEEPER, 3, clock)
    assert len(set(group.pids)) == 3
    assert group.running()
    group.stop(timeout=10)
    assert not group.running()
    assert group.supervise_once() == 0  # stopping: nothing is started again


def test_one_that_exits_after_a_long_life_is_replaced_at_once(
    procs: list[ServingProcesses], clock: Clock
) -> None:
    group = _started(procs, SLEEPER, 2, clock)
    first, second = group.pids
    clock.now += api_processes.HEALTHY_SECONDS + 1
    group._slots[0].proc.kill()
    group._slots[0].proc.wait()
    assert group.supervise_once() == 1
    pids = group.pids
    assert len(pids) == 2 and second in pids and first not in pids


def test_one_that_keeps_exiting_is_restarted_with_a_doubling_delay(
    procs: list[ServingProcesses], clock: Clock
) -> None:
    group = _started(procs, QUITTER, 1, clock)
    group._slots[0].proc.wait()
    delays = []
    for _ in range(8):
        assert group.supervise_once() == 0  # it exited at once: a delay, not a restart
        delay = group._slots[0].delay
        delays.append(delay)
        clock.now += delay - 0.01
        assert group.supervise_once() == 0  # not due yet
        clock.now += 0.01
        assert group.supervise_once() == 1
        group._slots[0].proc.wait()
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays[-1] == api_processes.MAX_RESTART_DELAY


def test_the_serving_command_line() -> None:
    argv = serving_argv("0.0.0.0", 8443, "tls", True, "/run/hub.sock")  # noqa: S104
    assert argv[1:4] == ["-m", "kustos.cli.main", "api"]
    joined = " ".join(argv)
    assert "--port 8443" in joined and "--reuse-port" in joined
    assert "--metrics-port 0" in joined and "--insecure" in joined
    assert "--audit-hub /run/hub.sock" in joined
    assert "--audit-hub" not in serving_argv("h", 1, "tls", False, None)
    assert "--insecure" not in serving_argv("h", 1, "tls", False, None)
