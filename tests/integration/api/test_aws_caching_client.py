"""AWS's own caching client for Python (`aws-secretsmanager-caching`) works against Kustos
unchanged: the program below is what an AWS application runs; it is given only the
environment botocore reads (the endpoint through AWS_ENDPOINT_URL_SECRETS_MANAGER, the CA,
an access key). SecretCache builds its own client, DescribeSecret finds AWSCURRENT's
version, GetSecretValue fetches it by VersionId, the decorators inject values, and
refresh_secret_now picks up a new version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.api_fixture import ApiWorld, Identity

pytestmark = pytest.mark.cluster

PROGRAM = r"""
import json, sys
from aws_secretsmanager_caching import (InjectKeywordedSecretString, InjectSecretString,
                                        SecretCache, SecretCacheConfig)

cache = SecretCache(config=SecretCacheConfig(secret_refresh_interval=3600))
out = {"first": cache.get_secret_string("cached/db")}

@InjectKeywordedSecretString(secret_id="cached/db", cache=cache, user="username",
                             pw="password")
def connect(user, pw):
    return f"{user}:{len(pw)}"

@InjectSecretString("cached/db", cache)
def raw(secret):
    return json.loads(secret)["username"]

out["keyworded"], out["raw"] = connect(), raw()
print(json.dumps(out), flush=True)
sys.stdin.readline()  # the test puts a new version meanwhile
out["cached"] = cache.get_secret_string("cached/db")
out["refreshed"] = cache.refresh_secret_now("cached/db")
out["after"] = cache.get_secret_string("cached/db")
out["binary"] = cache.get_secret_binary("cached/bin").hex()
print(json.dumps(out), flush=True)
"""


def test_aws_caching_client_works_unchanged(
    world: ApiWorld, ident: Identity, sm: Any, tmp_path: Path
) -> None:
    first = json.dumps({"username": "app", "password": "p" * 12})
    sm.create_secret(Name="cached/db", SecretString=first)
    sm.create_secret(Name="cached/bin", SecretBinary=b"\x00\x01kustos")
    script = tmp_path / "app.py"
    script.write_text(PROGRAM)
    env = {k: v for k, v in world.runner.env.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL_SECRETS_MANAGER=world.endpoint,
        AWS_CA_BUNDLE=str(world.ca_path),
        AWS_ACCESS_KEY_ID=ident.access_key_id,
        AWS_SECRET_ACCESS_KEY=ident.secret_access_key,
        AWS_DEFAULT_REGION="test",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        assert json.loads(line) == {"first": first, "keyworded": "app:12", "raw": "app"}
        second = json.dumps({"username": "app", "password": "q" * 20})
        sm.put_secret_value(SecretId="cached/db", SecretString=second)
        proc.stdin.write("\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out) == {
        "first": first,
        "keyworded": "app:12",
        "raw": "app",
        "cached": first,
        "refreshed": True,
        "after": second,
        "binary": b"\x00\x01kustos".hex(),
    }
