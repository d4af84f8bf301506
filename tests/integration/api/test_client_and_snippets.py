"""`kustos.client` and its `SecretCache` against the real API server; `kustos snippet`'s
Python code executed as printed (container credentials from a real `kustos api` process);
the pod-yaml snippet accepted by the real apiserver (server-side dry run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, SSLError
from tests.api_fixture import ApiWorld, Identity
from tests.integration.api.cli_helpers import Cli
from tests.kube_helpers import wait_for
from tests.operator_fixture import free_port

from kustos.client import SecretCache, SecretCacheConfig, connect

pytestmark = pytest.mark.cluster


def sa_token(world: ApiWorld, ident: Identity, path: Path) -> Path:
    path.write_text(
        world.cluster.kubectl(
            "create", "token", ident.service_account, "-n", ident.namespace, "--audience", "kustos"
        ).stdout
    )
    return path


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_client_credentials_and_cache(world: ApiWorld, ident: Identity, tmp_path: Path) -> None:
    keys = connect(
        world.endpoint,
        ca_bundle=str(world.ca_path),
        region="test",
        access_key_id=ident.access_key_id,
        secret_access_key=ident.secret_access_key,
    )
    arn = keys.create_secret(Name="client/db", SecretString="v1")["ARN"]
    bearer = connect(
        world.endpoint,
        ca_bundle=str(world.ca_path),
        token_file=sa_token(world, ident, tmp_path / "token"),
    )
    assert bearer.get_secret_value(SecretId="client/db")["SecretString"] == "v1"
    with pytest.raises(SSLError):  # verification on: without Kustos's CA, no trust
        connect(
            world.endpoint,
            region="test",
            access_key_id=ident.access_key_id,
            secret_access_key=ident.secret_access_key,
            max_attempts=1,
        ).list_secrets()
    stranger = connect(world.endpoint, ca_bundle=str(world.ca_path), token="not-a-token")
    with pytest.raises(ClientError) as exc:
        stranger.list_secrets()
    assert exc.value.response["Error"]["Code"] == "UnrecognizedClientException"

    # The caches' clock is the test's: a TTL is about time passing, not about how fast this
    # machine answers (the real server and clients do everything else).
    clock = ManualClock()
    cache = SecretCache(
        bearer,
        SecretCacheConfig(ttl_seconds=0.5, max_stale_seconds=60, retry_base_seconds=0.2),
        clock=clock,
    )
    assert cache.get_secret_string("client/db") == "v1"
    keys.put_secret_value(SecretId=arn, SecretString="v2")
    clock.advance(0.4)
    assert cache.get_secret_string("client/db") == "v1"  # within the TTL
    assert cache.get_secret_string("client/db", "AWSPREVIOUS") == "v1"
    clock.advance(0.2)
    assert cache.get_secret_string("client/db") == "v2"  # refreshed after the TTL
    keys.put_secret_value(SecretId=arn, SecretString="v3")
    assert cache.refresh("client/db").value.reveal() == "v3"

    # the server goes away: the cached value is served stale (a real connection error)
    route = {"client": bearer}
    stale = SecretCache(
        fetch=lambda sid, stage, _: route["client"].get_secret_value(
            SecretId=sid, VersionStage=stage
        ),
        config=SecretCacheConfig(ttl_seconds=0.2, max_stale_seconds=60),
        clock=clock,
    )
    assert stale.get_secret_string("client/db") == "v3"
    route["client"] = connect("https://127.0.0.1:1", token="t", max_attempts=1)
    clock.advance(0.3)
    assert stale.get_secret_string("client/db") == "v3"
    with pytest.raises(Exception, match="Could not connect"):
        stale.refresh("client/db")
    # deleted on the server: a definitive answer, not served stale
    keys.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    clock.advance(0.6)
    with pytest.raises(ClientError) as exc:
        cache.get_secret_string("client/db")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_python_snippet_runs_as_printed(world: ApiWorld, ident: Identity, tmp_path: Path) -> None:
    cli = Cli(world, ident, tmp_path)
    cli("create-secret", "--name", "snippet/db", "--secret-string", '{"pw":"snip"}')
    code = cli.run("snippet", "--secret-id", "snippet/db", "--lang", "python").stdout
    assert "snippet/db" in code and "{{" not in code
    script = tmp_path / "snippet.py"
    script.write_text(code)
    # container credentials from a real `kustos api` on loopback http, as the SDKs require
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "kustos.cli.main", "api", "--port", str(port), "--insecure"],
            env=world.runner.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        env = {
            k: v
            for k, v in cli.env.items()
            if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")
        }
        env.update(
            AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://127.0.0.1:{port}/v1/credentials",
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(sa_token(world, ident, tmp_path / "tok")),
            AWS_REGION="test",
        )

        def run() -> Any:
            assert api.poll() is None, log.read_text()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"exec(open({str(script)!r}).read()); "
                    "import sys; sys.stdout.write(get_secret())",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            return proc if proc.returncode == 0 or "Connection" not in proc.stderr else None

        proc = wait_for(run, timeout=60, what="snippet runs")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == '{"pw":"snip"}'
    finally:
        api.terminate()
        api.wait(timeout=20)


@pytest.mark.parametrize("lang", ["java", "javascript", "csharp", "go", "curl"])
def test_other_snippets_render(world: ApiWorld, ident: Identity, tmp_path: Path, lang: str) -> None:
    out = Cli(world, ident, tmp_path).run(
        "snippet",
        "--secret-id",
        "prod/db",
        "--lang",
        lang,
        "--endpoint-url",
        "https://kustos.example:8443",
    )
    assert out.returncode == 0 and "prod/db" in out.stdout and "{{" not in out.stdout
    assert "https://kustos.example:8443" in out.stdout


def test_pod_yaml_snippet_passes_server_dry_run(
    world: ApiWorld, ident: Identity, tmp_path: Path
) -> None:
    out = Cli(world, ident, tmp_path).run(
        "snippet", "--secret-id", "prod/db", "--lang", "pod-yaml", "-n", ident.namespace
    )
    assert out.returncode == 0, out.stderr
    assert 'kustos.io/inject-credentials: "true"' in out.stdout
    assert "arn:kustos:secretsmanager:local:*:secret:prod/db-*" in out.stdout
    applied = world.cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=out.stdout, check=False
    )
    assert applied.returncode == 0, applied.stderr
    assert "created (server dry run)" in applied.stdout
