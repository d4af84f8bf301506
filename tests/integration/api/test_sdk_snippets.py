"""`kustos snippet --lang <lang>` runs unchanged with the real AWS SDK for JavaScript v3, Go
v2 and Java 2.x, and gets the value.

Each program is the snippet exactly as printed; it is given only an environment: the
endpoint (`KUSTOS_ENDPOINT`), the region, the CA, and container credentials - a
ServiceAccount token and the credentials URI of a `kustos api --insecure` on loopback, as a
pod gets them. It prints the value's SHA-256 (never the value), which the test compares.
The SDKs come from their registries, cached under ~/.cache/kustos/sdk (tests.sdk.toolchains);
a test skips, saying which, only when the language's toolchain is not installed.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.api_fixture import ApiWorld, Identity
from tests.integration.api.cli_helpers import Cli
from tests.kube_helpers import wait_for
from tests.operator_fixture import free_port
from tests.sdk import toolchains
from tests.sdk.programs import SdkEndpoint, env_for, run_program

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def credentials_uri(world: ApiWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `kustos api` on loopback http, serving container credentials."""
    port = free_port()
    log = tmp_path_factory.mktemp("creds") / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen(
            [sys.executable, "-m", "kustos.cli.main", "api", "--port", str(port), "--insecure"],
            env=world.runner.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        import urllib.request

        def up() -> bool:
            assert api.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    return True
            except OSError:
                return False

        wait_for(up, timeout=90, what="kustos api (credentials) answering")
        yield f"http://127.0.0.1:{port}/v1/credentials"
    finally:
        api.terminate()
        api.wait(timeout=20)


@pytest.mark.parametrize("lang", toolchains.LANGS)
def test_snippet_runs_unchanged_with_the_real_sdk(
    world: ApiWorld, ident: Identity, tmp_path: Path, credentials_uri: str, lang: str
) -> None:
    tool = toolchains.missing(lang)
    if tool is not None:
        pytest.skip(f"{tool} is not installed on this machine; the {lang} SDK cannot run")
    chain = toolchains.prepare(lang)
    cli = Cli(world, ident, tmp_path)
    value = f'{{"password": "{uuid.uuid4()}"}}'
    cli("create-secret", "--name", f"sdk/{lang}", "--secret-string", value)
    code = cli.run("snippet", "--secret-id", f"sdk/{lang}", "--lang", lang).stdout
    assert f"sdk/{lang}" in code and "{{" not in code
    token = tmp_path / "token"
    token.write_text(
        world.cluster.kubectl(
            "create", "token", ident.service_account, "-n", ident.namespace, "--audience", "kustos"
        ).stdout
    )
    target = SdkEndpoint(
        world.endpoint, world.ca_path, "test", credentials_uri=credentials_uri, token_file=token
    )
    env = env_for(lang, target, dict(chain.env()))
    cmd = chain.build(code, tmp_path / "program")
    proc = run_program(cmd, env, tmp_path / "program")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    digest = hashlib.sha256(value.encode()).hexdigest()
    assert proc.stdout.strip() == f"retrieved sdk/{lang}: sha256 {digest}"
    assert value not in proc.stdout + proc.stderr
