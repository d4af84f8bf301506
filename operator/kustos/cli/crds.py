"""`kustos crds` and `kustos install`: the package's CRDs, printed or applied."""

from __future__ import annotations

import click

from kustos.kube.client import api_client
from kustos.kube.crds import apply_crds, crds_yaml

__all__ = ["crds", "install"]


@click.command()
def crds() -> None:
    """Print the CustomResourceDefinitions (pipe to `kubectl apply --server-side -f -`)."""
    click.echo(crds_yaml(), nl=False)


@click.command()
@click.option(
    "--kubeconfig",
    envvar="KUBECONFIG",
    default=None,
    help="Kubeconfig (default $KUBECONFIG, else in-cluster).",
)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait until served.")
def install(kubeconfig: str | None, timeout: float) -> None:
    """Apply the CRDs to the cluster (server-side apply) and wait until they are served."""
    api = api_client(kubeconfig)
    try:
        for name in apply_crds(api, timeout):
            click.echo(f"customresourcedefinition/{name} serverside-applied, Established")
    finally:
        api.close()
