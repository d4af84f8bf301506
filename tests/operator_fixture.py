"""Runs the real operator (`kustos run`) as a child process against the test cluster.

A real process, so tests can restart it or kill it with SIGKILL, and so its whole log can
be scanned for canaries. Each runner gets its own SQLite store and keyring namespace.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorRunner:
    def __init__(self, kubeconfig: str, workdir: Path, namespace: str, **env: str) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.namespace = namespace
        self.store_path = workdir / "kustos.db"
        self.log_path = workdir / "operator.log"
        self.extra_env = env
        #: What `python` runs, before `run`: the console script's module, or a test's wrapper
        #: of it (tests/crash_operator.py) with its arguments.
        self.entry: list[str] = ["-m", "kustos.cli.main"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KUBECONFIG=self.kubeconfig,
            KUSTOS_STORE_URL=f"sqlite:///{self.store_path}",
            KUSTOS_NAMESPACE=self.namespace,
            KUSTOS_RESYNC_SECONDS="2",
            KUSTOS_DRIFT_CHECK_SECONDS="2",
            KUSTOS_ORPHAN_SWEEP_SECONDS="5",
            KUSTOS_CLUSTER_NAME="test",
            KUSTOS_API_PORT="0",  # tests that need the API server ask for a port
            KUSTOS_METRICS_PORT="0",
            KUSTOS_API_DRAIN_SECONDS="0",  # no Service in front: nothing to wait for
            PYTHONUNBUFFERED="1",
            # the repository first, for entries in tests/, then its own package: a run from
            # another worktree (an older checkout in a bench) runs that checkout's code, not
            # the editable install's
            PYTHONPATH=os.pathsep.join(
                p for p in (str(REPO), str(REPO / "operator"), os.environ.get("PYTHONPATH")) if p
            ),
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Start the operator and wait up to `timeout` s for its liveness endpoint."""
        assert self.proc is None or self.proc.poll() is not None
        port = free_port()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    *self.entry,
                    "run",
                    "--verbose",
                    "--liveness",
                    f"http://127.0.0.1:{port}/healthz",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._wait_healthy(port, timeout)

    def _wait_healthy(self, port: int, timeout: float | None = None) -> None:
        import urllib.request

        # KUSTOS_TEST_START_SECONDS: more time to start on a heavily loaded machine (benches)
        timeout = timeout or float(os.environ.get("KUSTOS_TEST_START_SECONDS", "60"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"operator exited early; see {self.log_path}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"operator not healthy in {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def operator_factory(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    runners: list[OperatorRunner] = []

    def make(**env: str) -> OperatorRunner:
        ns = f"kustos-sys-{uuid.uuid4().hex[:6]}"
        kube_cluster.kubectl("create", "namespace", ns)
        runner = OperatorRunner(
            kube_cluster.kubeconfig, tmp_path_factory.mktemp("operator"), ns, **env
        )
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.stop()
