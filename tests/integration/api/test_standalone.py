"""`kustos api` runs the API on its own (to scale out), on the same store and TLS Secret."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from tests.api_fixture import ApiWorld
from tests.kube_helpers import wait_for
from tests.operator_fixture import free_port

pytestmark = pytest.mark.cluster


def test_kustos_api_serves_the_same_secrets(world: ApiWorld, sm: Any, ident: Any) -> None:
    arn = sm.create_secret(Name="scaled/out", SecretString="same")["ARN"]
    port = free_port()
    log = world.runner.workdir / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kustos.cli.main", "api", "--port", str(port)],
            env=world.runner.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=world.runner.workdir,
        )
    try:
        second = ApiWorld(world.cluster, world.runner, port, world.ca_path)
        client = second.client(ident)

        def answer() -> Any:
            assert proc.poll() is None, log.read_text()
            try:
                return client.get_secret_value(SecretId=arn)
            except Exception as exc:  # not listening yet
                if "Could not connect" in str(exc) or "Connection" in type(exc).__name__:
                    return None
                raise

        got = wait_for(answer, timeout=60, what="kustos api answering")
        assert got["SecretString"] == "same"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode in (0, -15)
