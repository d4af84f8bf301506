"""One operator process serving the API for all API tests (starting one takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.api_fixture import ApiWorld, Identity, start_api_world
from tests.kube_helpers import new_namespace


@pytest.fixture(scope="package")
def world(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    kube_cluster.apply_crds()
    api_world = start_api_world(kube_cluster, tmp_path_factory.mktemp("api"))
    yield api_world
    api_world.runner.stop()


@pytest.fixture
def ns(world: ApiWorld) -> str:
    return new_namespace(world.cluster, "api")


@pytest.fixture
def ident(world: ApiWorld, ns: str) -> Identity:
    return world.identity(ns)


@pytest.fixture
def sm(world: ApiWorld, ident: Identity) -> Any:
    """A boto3 secretsmanager client authenticated as the namespace's `app` ServiceAccount."""
    return world.client(ident)
