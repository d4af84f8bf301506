"""Entry point of the `kustos` console script.

The Secrets Manager verbs (`kustos get-secret-value`, ...) are registered at once; every
other command's module is imported only when that command runs (`LazyGroup`), so a verb does
not pay for the store, the Kubernetes client and the services it never uses.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Any

import click

from kustos.cli import sm as sm_cli
from kustos.errors import KustosError

__all__ = ["main"]

#: command name -> "module:attribute" of its click command, imported on first use.
LAZY_COMMANDS = {
    "api": "kustos.cli.api_cmd:api",
    "keys": "kustos.cli.keys:keys",
    "audit": "kustos.cli.audit:audit",
    "usage": "kustos.cli.audit:usage",
    "access-key": "kustos.cli.access:access_key",
    "access": "kustos.cli.access:access",
    "policy": "kustos.cli.policy:policy",
    "snippet": "kustos.cli.snippet:snippet",
    "crds": "kustos.cli.crds:crds",
    "install": "kustos.cli.crds:install",
    "rollback": "kustos.cli.rollback:rollback",
    "credentials-proxy": "kustos.cli.credentials_proxy:credentials_proxy",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise TypeError(f"{target} is not the click command {cmd_name!r}")
        return command


@click.group(cls=LazyGroup)
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
    from kustos.cli import api_cmd
    from kustos.cli.loops import runner
    from kustos.cli.malloc import limit_arenas, start_trimmer
    from kustos.config import Settings

    limit_arenas()  # before any thread starts
    trimming = threading.Event()
    start_trimmer(trimming)
    api_cmd.serve_in_operator()  # the Secrets Manager API on Kopf's loop ($KUSTOS_API_PORT, 0: off)
    kopf.configure(verbose=verbose)
    with runner() as loop_runner:
        kopf.run(
            loop=loop_runner.get_loop(),
            clusterwide=True,
            standalone=True,
            liveness_endpoint=liveness or None,
            memo=kopf.Memo(
                settings=Settings.from_env(),  # settings read once, here
                step_hook=(obj or {}).get("step_hook"),  # tests only
            ),
        )
    trimming.set()


sm_cli.register(cli)  # the Secrets Manager verbs; rotate-secret --namespace stays in-process


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KustosError as exc:
        click.echo(f"An error occurred ({exc.aws_code}): {exc.message}", err=True)
        sys.exit(254)


if __name__ == "__main__":
    main()
