"""Running programs written for the AWS SDKs of other languages against a live Kustos.

`SdkEndpoint` holds how a program reaches Kustos: the API's URL and CA, and either an access
key or container credentials (a ServiceAccount token and the credentials URI of a
`kustos api --insecure` on loopback, which the SDKs accept over plain http). `env_for`
turns it into the environment each SDK reads - the only thing a program is given; its code
is the code as printed. Java trusts the CA through a PKCS12 trust store made by keytool.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SdkEndpoint", "env_for", "run_program"]


@dataclass(frozen=True)
class SdkEndpoint:
    url: str
    ca_path: Path
    region: str
    access_key: tuple[str, str] | None = None
    credentials_uri: str | None = None
    token_file: Path | None = None


def _trust_store(ca: Path) -> Path:
    store = ca.with_name(ca.stem + "-truststore.p12")
    if not store.exists():
        subprocess.run(
            [
                "keytool",
                "-importcert",
                "-noprompt",
                "-alias",
                "kustos",
                "-file",
                str(ca),
                "-keystore",
                str(store),
                "-storetype",
                "PKCS12",
                "-storepass",
                "changeit",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return store


def env_for(lang: str, target: SdkEndpoint, base: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(("AWS_", "KUSTOS_"))}
    env.update(
        KUSTOS_ENDPOINT=target.url,
        AWS_REGION=target.region,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
    )
    if target.access_key is not None:
        env.update(
            AWS_ACCESS_KEY_ID=target.access_key[0], AWS_SECRET_ACCESS_KEY=target.access_key[1]
        )
    if target.credentials_uri is not None:
        env.update(
            AWS_CONTAINER_CREDENTIALS_FULL_URI=target.credentials_uri,
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(target.token_file),
        )
    if lang == "javascript":
        env["NODE_EXTRA_CA_CERTS"] = str(target.ca_path)
    elif lang == "go":
        env["AWS_CA_BUNDLE"] = str(target.ca_path)
    elif lang == "java":
        store = _trust_store(target.ca_path)
        env["JAVA_TOOL_OPTIONS"] = (
            f"-Djavax.net.ssl.trustStore={store} "
            "-Djavax.net.ssl.trustStorePassword=changeit "
            "-Djavax.net.ssl.trustStoreType=PKCS12"
        )
    return env


def run_program(
    cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        env=env or dict(os.environ),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
