"""Running `kustos <verb>` (and, as the oracle, `aws secretsmanager <verb>`) as a process
against the test API server, authenticated with an identity's access key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.api_fixture import AWS_CLI, ApiWorld, Identity


def cli_env(world: ApiWorld, ident: Identity | None, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUSTOS_"))}
    config = tmp / "aws-config"
    config.write_text("[default]\ncli_timestamp_format = iso8601\n")
    env.update(
        KUSTOS_ENDPOINT=world.endpoint,
        KUSTOS_CA_BUNDLE=str(world.ca_path),
        AWS_DEFAULT_REGION="test",
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_MAX_ATTEMPTS="1",
        TZ="UTC",
    )
    if ident is not None:
        env.update(
            AWS_ACCESS_KEY_ID=ident.access_key_id, AWS_SECRET_ACCESS_KEY=ident.secret_access_key
        )
    env.update(extra)
    return env


class Cli:
    def __init__(self, world: ApiWorld, ident: Identity | None, tmp: Path, **extra: str):
        self.world, self.env = world, cli_env(world, ident, tmp, **extra)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kustos.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def __call__(self, *args: str) -> Any:
        proc = self.run(*args)
        assert proc.returncode == 0, f"kustos {' '.join(args)}: {proc.stderr}"
        assert "Traceback" not in proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def aws(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                AWS_CLI,
                "secretsmanager",
                *args,
                "--endpoint-url",
                self.world.endpoint,
                "--ca-bundle",
                str(self.world.ca_path),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
