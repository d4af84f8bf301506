"""Entry point of the `kustos` console script."""

from __future__ import annotations

import sys
from typing import Any

import click

from kustos.cli import access as access_cli
from kustos.cli import api_cmd
from kustos.cli import audit as audit_cli
from kustos.cli import crds as crds_cli
from kustos.cli import credentials_proxy as proxy_cli
from kustos.cli import keys as keys_cli
from kustos.cli import policy as policy_cli
from kustos.cli import rollback as rollback_cli
from kustos.cli import sm as sm_cli
from kustos.cli import snippet as snippet_cli
from kustos.config import Settings
from kustos.errors import KustosError

__all__ = ["main"]


@click.group()
@click.version_option(package_name="kustos")
def cli() -> None:
    """Kustos: AWS Secrets Manager for Kubernetes."""


@cli.command()
@click.option("--verbose", is_flag=True, help="Debug logging.")
@click.option(
    "--liveness",
    default="http://0.0.0.0:8080/healthz",
    show_default=True,
    help="Kopf's liveness endpoint.",
)
@click.pass_obj
def run(obj: dict[str, Any] | None, verbose: bool, liveness: str) -> None:
    """Run the operator in the foreground (all namespaces)."""
    import kopf

    import kustos.operator.handlers
    import kustos.operator.policies  # noqa: F401  (access policy status)

    api_cmd.serve_in_operator()  # the Secrets Manager API on Kopf's loop ($KUSTOS_API_PORT, 0: off)
    kopf.configure(verbose=verbose)
    kopf.run(
        clusterwide=True,
        standalone=True,
        liveness_endpoint=liveness or None,
        memo=kopf.Memo(
            settings=Settings.from_env(),  # settings read once, here
            step_hook=(obj or {}).get("step_hook"),
        ),
    )  # tests only


cli.add_command(api_cmd.api)
cli.add_command(keys_cli.keys)
cli.add_command(audit_cli.audit)
cli.add_command(audit_cli.usage)
cli.add_command(access_cli.access_key)
cli.add_command(access_cli.access)
cli.add_command(policy_cli.policy)
cli.add_command(snippet_cli.snippet)
cli.add_command(crds_cli.crds)
cli.add_command(crds_cli.install)
cli.add_command(rollback_cli.rollback)
cli.add_command(proxy_cli.credentials_proxy)
sm_cli.register(cli)  # the Secrets Manager verbs; rotate-secret --namespace stays in-process


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KustosError as exc:
        click.echo(f"An error occurred ({exc.aws_code}): {exc.message}", err=True)
        sys.exit(254)


if __name__ == "__main__":
    main()
