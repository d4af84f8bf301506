"""Builds a `kubernetes` ApiClient from a kubeconfig file or the in-cluster environment.

Every request it makes is a blocking call: inside `kustos.models.nonblocking` (the API's
event-loop attempts) it raises `WouldBlock` instead of being sent."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config

from kustos.models.nonblocking import must_not_block

__all__ = ["api_client"]


class _ApiClient(client.ApiClient):  # type: ignore[misc]
    def request(self, *args: Any, **kwargs: Any) -> Any:
        must_not_block("a Kubernetes API request")
        return super().request(*args, **kwargs)


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
    return _ApiClient(configuration)
