"""Builds a `kubernetes` ApiClient from a kubeconfig file or the in-cluster environment."""

from __future__ import annotations

from kubernetes import client, config

__all__ = ["api_client"]


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """The kubeconfig file given (callers pass `Settings.kubeconfig`, i.e. $KUBECONFIG), else
    the in-cluster config."""
    configuration = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    # Many handler threads share one client; the default pool (4) would serialize them.
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)
