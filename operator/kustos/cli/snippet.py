"""`kustos snippet`: ready-to-use code that reads one secret from Kustos.

Like the AWS console's sample code on a secret's page, for each SDK with the Kustos endpoint
override and ServiceAccount-based authentication (the container-credentials provider; curl
sends the projected token as a Bearer token), plus ``pod-yaml``: a ServiceAccount, a
SecretAccessPolicy granting it GetSecretValue on the secret, and a Deployment annotated for
the pod-credentials webhook (which injects the credentials sidecar and the environment the
SDKs read). The
templates are package data in ``kustos/cli/snippets/``. Prints code only, never a value.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import click

from kustos.config import client_environment

__all__ = ["LANGUAGES", "render_snippet", "snippet"]

LANGUAGES = {
    "python": "python.py.tmpl",
    "java": "java.java.tmpl",
    "javascript": "javascript.js.tmpl",
    "csharp": "csharp.cs.tmpl",
    "go": "go.go.tmpl",
    "curl": "curl.sh.tmpl",
    "pod-yaml": "pod-yaml.yaml.tmpl",
}
IN_CLUSTER_ENDPOINT = "https://kustos-api.kustos-system.svc:8443"
TOKEN_FILE = "/var/run/secrets/kustos/token"
CA_BUNDLE = "/var/run/kustos/ca.crt"  # where the credentials sidecar writes the CA


def _object_name(secret_id: str) -> str:
    name = secret_id.rsplit(":secret:", 1)[-1]
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:50] or "app"


def _resource(secret_id: str, region: str) -> str:
    """The policy Resource naming the secret: its ARN, or every ARN of that name (the
    6-character suffix AWS appends)."""
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:kustos:secretsmanager:{region}:*:secret:{secret_id}-*"


def render_snippet(
    lang: str,
    secret_id: str,
    *,
    endpoint: str,
    region: str = "local",
    namespace: str = "default",
    service_account: str = "app",
    image: str = "python:3.12-slim",
) -> str:
    """The snippet for `lang` with every placeholder filled in."""
    template = resources.files("kustos.cli").joinpath("snippets", LANGUAGES[lang]).read_text()
    values = {
        "SECRET_ID": secret_id,
        "SECRET_ID_JSON": json.dumps(secret_id)[1:-1],
        "ENDPOINT": endpoint.rstrip("/"),
        "REGION": region,
        "NAMESPACE": namespace,
        "SERVICE_ACCOUNT": service_account,
        "APP": _object_name(secret_id) or "app",
        "IMAGE": image,
        "TOKEN_FILE": TOKEN_FILE,
        "CA_BUNDLE": CA_BUNDLE,
        "CREDENTIALS_URI": endpoint.rstrip("/") + "/v1/credentials",
        "PROJECTED_SECRET": _object_name(secret_id),
        "RESOURCE": _resource(secret_id, region),
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


@click.command("snippet")
@click.option("--secret-id", required=True, help="The secret's name (or ARN).")
@click.option("--lang", type=click.Choice(list(LANGUAGES)), default="python", show_default=True)
@click.option(
    "--endpoint-url",
    default=None,
    help=f"Endpoint written into the code (default $KUSTOS_ENDPOINT or {IN_CLUSTER_ENDPOINT}).",
)
@click.option(
    "--region",
    default=lambda: client_environment().region or "local",
    help="The Kustos cluster name (SigV4 region).",
)
@click.option(
    "--namespace",
    "-n",
    default="default",
    show_default=True,
    help="pod-yaml: the Deployment's namespace.",
)
@click.option(
    "--service-account",
    default="app",
    show_default=True,
    help="pod-yaml: the ServiceAccount the pod runs as.",
)
@click.option(
    "--image", default="python:3.12-slim", show_default=True, help="pod-yaml: the container image."
)
def snippet(
    secret_id: str,
    lang: str,
    endpoint_url: str | None,
    region: str,
    namespace: str,
    service_account: str,
    image: str,
) -> None:
    """Print code that retrieves a secret from Kustos (as the AWS console's samples)."""
    endpoint = endpoint_url or client_environment().endpoint or IN_CLUSTER_ENDPOINT
    click.echo(
        render_snippet(
            lang,
            secret_id,
            endpoint=endpoint,
            region=region,
            namespace=namespace,
            service_account=service_account,
            image=image,
        ),
        nl=False,
    )
