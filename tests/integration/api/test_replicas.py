"""Replicas on one SQLite store: the operator (replica A) and `kustos api --processes 2`
(replica B: two processes sharing a port by SO_REUSEPORT). A value written through one
replica is what the other returns next, whatever each has cached; B's second process commits
its audit records through the first one's hub, into the one chain that verifies, and is
started again when it dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.api_fixture import ApiWorld
from tests.integration.test_audit_operator import kustos
from tests.kube_helpers import wait_for
from tests.operator_fixture import free_port

pytestmark = pytest.mark.cluster


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def test_a_write_through_either_replica_is_read_by_the_other(
    world: ApiWorld,
    sm: Any,
    ident: Any,
) -> None:
    arn = sm.create_secret(Name="replicas/db", SecretString="v1")["ARN"]
    workers: list[int] = []
    port = free_port()
    log = world.runner.workdir / "api-replica.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kustos.cli.main",
                "api",
                "--port",
                str(port),
                "--processes",
                "2",
                "--metrics-port",
                "0",
            ],
            env=world.runner.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=world.runner.workdir,
        )
    try:
        b = ApiWorld(world.cluster, world.runner, port, world.ca_path)

        def value_via_b() -> Any:
            assert proc.poll() is None, log.read_text()
            try:  # a new client, so a new connection: the kernel picks either process
                return b.client(ident).get_secret_value(SecretId=arn)["SecretString"]
            except Exception as exc:  # not listening yet
                if "Could not connect" in str(exc) or "Connection" in type(exc).__name__:
                    return None
                raise

        assert wait_for(value_via_b, timeout=60, what="kustos api answering") == "v1"
        wait_for(lambda: len(_children(proc.pid)) == 1, timeout=30, what="the second process")
        workers = _children(proc.pid)
        wait_for(  # the second process listens too: new connections reach either
            lambda: log.read_text().count("Secrets Manager API on") == 2,
            timeout=60,
            what="the second process serving",
        )
        for _ in range(10):  # both of B's processes have v1 cached
            assert value_via_b() == "v1"

        sm.put_secret_value(SecretId=arn, SecretString="v2")  # through A, the operator
        assert [value_via_b() for _ in range(10)] == ["v2"] * 10

        b.client(ident).put_secret_value(SecretId=arn, SecretString="v3")  # through B
        assert sm.get_secret_value(SecretId=arn)["SecretString"] == "v3"
        assert [value_via_b() for _ in range(10)] == ["v3"] * 10

        os.kill(workers[0], signal.SIGKILL)  # the second process dies: another replaces it
        wait_for(
            lambda: len(set(_children(proc.pid)) - {workers[0]}) == 1,
            timeout=30,
            what="a new second process",
        )
        workers = sorted(set(workers) | set(_children(proc.pid)))
        wait_for(
            lambda: log.read_text().count("Secrets Manager API on") == 3,
            timeout=60,
            what="the new process serving",
        )
        # 30 new connections: both processes serve some (one misses all with p = 2**-30)
        assert [value_via_b() for _ in range(30)] == ["v3"] * 30
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode in (0, -15)
    assert "exited with -9; starting another" in log.read_text()
    text = log.read_text()
    committed = [w for w in workers if f"API process {w} commits through this one" in text]
    assert len(committed) == 2, committed  # the second process, and the one that replaced it
    reads = json.loads(
        kustos(
            world.runner,
            "audit",
            "lookup",
            "--secret-id",
            arn,
            "--event-name",
            "GetSecretValue",
            "--max-items",
            "500",
        ).stdout
    )["Events"]
    assert len(reads) >= 61  # every read through B is recorded, whichever process served it
    verified = json.loads(kustos(world.runner, "audit", "verify", "--output", "json").stdout)
    assert verified["ok"], verified
    wait_for(
        lambda: not any(Path(f"/proc/{w}").exists() for w in workers),
        timeout=30,
        what="the serving processes to exit with their parent",
    )
