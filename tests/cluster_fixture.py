"""The Kubernetes cluster that tests marked ``cluster`` run against.

If ``KUSTOS_TEST_KUBECONFIG`` is set, tests use that cluster (e.g. a kind cluster) and this
module starts nothing. Otherwise the first test that asks for a cluster starts a private
control plane (``tools/controlplane/cluster.py``) in a temporary state directory, so tests
never clash with a developer's ``make cluster-up``; it is torn down when the session ends.

``tests/conftest.py`` re-exports the ``kube_cluster`` session fixture.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

__all__ = ["KubeCluster", "apply_crds", "ensure_cluster", "kube_cluster"]

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO / "crds"
ENV_KUBECONFIG = "KUSTOS_TEST_KUBECONFIG"

_private: Any = None  # the ControlPlane this process started, if any


def _controlplane_module() -> ModuleType:
    name = "kustos_tools_controlplane_cluster"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, REPO / "tools" / "controlplane" / "cluster.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def ensure_cluster() -> str:
    """Return the path of an admin kubeconfig for a running cluster, starting one if needed."""
    global _private
    external = os.environ.get(ENV_KUBECONFIG)
    if external:
        return str(Path(external).expanduser().resolve())
    if _private is None:
        state_dir = Path(tempfile.mkdtemp(prefix="kustos-test-cluster-"))
        cp = _controlplane_module().ControlPlane(
            state_dir / "cluster", state_dir / "kubeconfig", kubectl_link=None
        )
        # Registered before starting, so a failed start still cleans up what it left.
        atexit.register(_teardown, cp, state_dir)
        cp.up()
        _private = cp
    return str(_private.kubeconfig)


def _teardown(cp: Any, state_dir: Path) -> None:
    global _private
    cp.down()
    shutil.rmtree(state_dir, ignore_errors=True)
    if _private is cp:
        _private = None


def _kubectl_binary() -> str:
    if _private is not None or not os.environ.get(ENV_KUBECONFIG):
        return str(_controlplane_module().build_binaries() / "kubectl")
    local = REPO / ".local" / "bin" / "kubectl"
    found = shutil.which("kubectl") or (str(local) if local.exists() else None)
    return found or str(_controlplane_module().build_binaries() / "kubectl")


@dataclass(frozen=True)
class KubeCluster:
    """A running cluster: its admin kubeconfig and a kubectl bound to it."""

    kubeconfig: str
    kubectl_path: str

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raise with its stderr if ``check`` and it fails."""
        proc = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return proc

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this cluster."""
        config: Any = importlib.import_module("kubernetes.config")
        return config.new_client_from_config(config_file=self.kubeconfig)

    def apply_crds(self, crds: Path = CRDS) -> bool:
        return apply_crds(self, crds)


def apply_crds(cluster: KubeCluster, crds: Path = CRDS) -> bool:
    """Apply ``crds/*.yaml`` (if any) and wait until they are served; False if there are none."""
    files = sorted(p for p in crds.glob("*.yaml") if p.name != "kustomization.yaml")
    if not files:
        return False
    args = [arg for f in files for arg in ("-f", str(f))]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", *args)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *args)
    return True


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """The session's cluster (see the module docstring); stopped at the end if we started it."""
    kubeconfig = ensure_cluster()
    yield KubeCluster(kubeconfig=kubeconfig, kubectl_path=_kubectl_binary())
    if _private is not None:
        _teardown(_private, Path(_private.state_dir).parent)
