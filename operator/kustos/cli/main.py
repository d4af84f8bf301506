"""Entry point of the `kustos` console script."""

from __future__ import annotations

import json
import sys

import click

from kustos.config import Settings
from kustos.errors import KustosError

__all__ = ["main"]


@click.group()
@click.version_option(package_name="kustos")
def cli() -> None:
    """Kustos: AWS Secrets Manager for Kubernetes."""


@cli.command()
@click.option("--verbose", is_flag=True, help="Debug logging.")
@click.option("--liveness", default="http://0.0.0.0:8080/healthz", show_default=True,
              help="Kopf's liveness endpoint.")
def run(verbose: bool, liveness: str) -> None:
    """Run the operator in the foreground (all namespaces)."""
    import kopf

    import kustos.operator.handlers  # noqa: F401  (registers the handlers)

    kopf.configure(verbose=verbose)
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=liveness or None)


@cli.group()
def keys() -> None:
    """Manage the keyring (key-encryption keys)."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Add a new key-encryption key and rewrap every data key to it (payloads untouched)."""
    from kustos.services.factory import Services

    services = Services.build(Settings.from_env())
    try:
        result = services.keys.rotate()
    finally:
        services.close()
    click.echo(json.dumps({"NewKeyId": result.new_key_id, "Rewrapped": result.rewrapped,
                           "Skipped": result.skipped}))


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KustosError as exc:
        click.echo(f"An error occurred ({exc.aws_code}): {exc.message}", err=True)
        sys.exit(254)


if __name__ == "__main__":
    main()
