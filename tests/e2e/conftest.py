"""The e2e tier runs on the session's cluster with a node: every e2e test shares it."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def kube_cluster(node_cluster: Any) -> Any:
    """Here ``kube_cluster`` (what the operator fixture and helpers use) is the node cluster."""
    return node_cluster
