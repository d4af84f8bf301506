"""The Kubernetes clusters that tests marked ``cluster`` run against.

If ``KUSTOS_TEST_KUBECONFIG`` is set, tests use that cluster (e.g. a kind cluster) and this
module starts nothing. Otherwise the first test that asks for a cluster starts a private
control plane (``tools/controlplane/cluster.py``) in a temporary state directory, so tests
never clash with a developer's ``make cluster-up``; it is torn down when the session ends.

Two session fixtures: ``kube_cluster``, a control plane without a node (fast tiers; several
test runs side by side), and ``node_cluster``, a control plane with one real node where pods
run (the e2e tier; every e2e test shares it). A node is machine-wide, so ``node_cluster``
waits for the machine's node lock (``KUSTOS_NODE_LOCK_TIMEOUT`` seconds, default 1800).
``kustos_image`` builds the Kustos image from the Dockerfile once per session and loads it
into the node (``KUSTOS_TEST_IMAGE_ARCHIVE`` names an archive built before, to skip that).

``tests/conftest.py`` re-exports the fixtures.
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

__all__ = [
    "KubeCluster",
    "NodeCluster",
    "apply_crds",
    "ensure_cluster",
    "ensure_node_cluster",
    "kube_cluster",
    "kustos_image",
    "node_cluster",
]

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO / "crds"
ENV_KUBECONFIG = "KUSTOS_TEST_KUBECONFIG"

_private: Any = None  # the ControlPlane this process started, if any
_private_node: Any = None  # the ControlPlane with a node this process started, if any
_node_baseline: dict[str, Any] | None = None  # host_state() before our node started
_loaded: list[Path] = []  # image archives loaded into our node (reloaded after a restart)


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


def _record_baseline() -> None:
    global _node_baseline
    _node_baseline = host_state()


def ensure_node_cluster() -> str:
    """Like ``ensure_cluster``, for a cluster with a node (started once per session)."""
    global _private_node
    external = os.environ.get(ENV_KUBECONFIG)
    if external:
        return str(Path(external).expanduser().resolve())
    if _private_node is None:
        state_dir = Path(tempfile.mkdtemp(prefix="kustos-test-node-"))
        cp = _controlplane_module().ControlPlane(
            state_dir / "cluster",
            state_dir / "kubeconfig",
            kubectl_link=None,
            node=True,
            node_lock_timeout=float(os.environ.get("KUSTOS_NODE_LOCK_TIMEOUT", "1800")),
            # The baseline is taken holding the node lock: while we waited for it, another
            # run's node changed the machine (its sysctls are not what down restores).
            on_node_lock=_record_baseline,
        )
        atexit.register(_teardown, cp, state_dir)
        cp.up()
        _private_node = cp
    return str(_private_node.kubeconfig)


def host_state() -> dict[str, Any]:
    """What a node may change on the machine, normalized for comparison."""

    def out(*cmd: str) -> str:
        return subprocess.run(list(cmd), capture_output=True, text=True, check=False).stdout

    saved = out("iptables-save") + out("ip6tables-save")
    # Rules only ("-A chain ..."): a table's "*nat" header and its "COMMIT" are printed once
    # the table exists, and a fresh machine has none until the node's first rule loads it,
    # so an empty table left after `down` is not a change the node failed to undo.
    rules = [line for line in saved.splitlines() if line.startswith("-")]
    nat_chains = [line.split()[0] for line in saved.splitlines() if line.startswith(":")]
    links = sorted(
        line.split(":")[1].strip().split("@")[0] for line in out("ip", "-o", "link").splitlines()
    )
    sysctls = {}
    for key in (
        "net/ipv4/ip_forward",
        "net/ipv4/conf/all/route_localnet",
        "net/bridge/bridge-nf-call-iptables",
        "net/netfilter/nf_conntrack_max",
        "net/netfilter/nf_conntrack_tcp_timeout_established",
        "vm/overcommit_memory",
        "kernel/panic",
        "kernel/panic_on_oops",
    ):
        p = Path("/proc/sys") / key
        sysctls[key] = p.read_text().strip() if p.exists() else None
    kubepods = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods"))
    mounts = sorted(
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if "kubelet" in line.split()[4] or "containerd" in line.split()[4]
    )
    addrs = out("ip", "-o", "addr")
    netns = (
        sorted(p.name for p in Path("/run/netns").iterdir())
        if Path("/run/netns").is_dir()
        else None
    )
    return {
        "rules": rules,
        "chains": nat_chains,
        "links": links,
        "sysctls": sysctls,
        "kubepods": kubepods,
        "mounts": mounts,
        "netns": netns,
        "link_local_v4": "169.254." in addrs,
    }


def _teardown(cp: Any, state_dir: Path) -> None:
    global _private, _private_node
    cp.down()
    shutil.rmtree(state_dir, ignore_errors=True)
    if _private is cp:
        _private = None
    if _private_node is cp:
        _private_node = None


def _kubectl_binary() -> str:
    if _private is not None or _private_node is not None or not os.environ.get(ENV_KUBECONFIG):
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


@dataclass(frozen=True)
class NodeCluster(KubeCluster):
    """A cluster with a node; ``control_plane`` is None for an external cluster."""

    control_plane: Any = None

    @property
    def containerd_socket(self) -> Path | None:
        if self.control_plane is None:
            return None
        return Path(self.control_plane.state_dir) / "node" / "containerd.sock"

    @property
    def base_image(self) -> str:
        """An image on the node with python3 (Debian): the sandbox image, for test pods."""
        if self.control_plane is None:
            return os.environ.get("KUSTOS_TEST_BASE_IMAGE", "python:3.11-slim")
        return str(_controlplane_module().images_module().pause_archive()[1])

    def load_image(self, archive: Path) -> None:
        """Import a docker-archive into the node's containerd (our node only)."""
        if self.containerd_socket is None:
            pytest.skip("loading a locally built image needs the local node")
        _controlplane_module().images_module().load(self.containerd_socket, archive)
        if archive not in _loaded:
            _loaded.append(archive)

    @property
    def host_baseline(self) -> dict[str, Any] | None:
        """The machine's state (``host_state``) before this session's node started."""
        return _node_baseline

    def restart(self) -> None:
        """Start our node again after a ``down`` and reload the images it had."""
        self.control_plane.up()
        for archive in _loaded:
            self.load_image(archive)


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


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[NodeCluster]:
    """The session's cluster with a node (see the module docstring)."""
    kubeconfig = ensure_node_cluster()
    yield NodeCluster(
        kubeconfig=kubeconfig, kubectl_path=_kubectl_binary(), control_plane=_private_node
    )
    if _private_node is not None:
        _teardown(_private_node, Path(_private_node.state_dir).parent)


@pytest.fixture(scope="session")
def kustos_image(node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Kustos image built from the Dockerfile (buildah, no registry), loaded on the node;
    returns its name as the manifests spell it."""
    if node_cluster.control_plane is None:
        image = os.environ.get("KUSTOS_TEST_IMAGE")
        if not image:
            pytest.skip("external cluster: set KUSTOS_TEST_IMAGE to an image it can run")
        return image
    images = _controlplane_module().images_module()
    prebuilt = os.environ.get("KUSTOS_TEST_IMAGE_ARCHIVE")  # a `make image` archive: no rebuild
    if prebuilt:
        archive = Path(prebuilt)
    else:
        workdir = tmp_path_factory.mktemp("image")
        archive, _tag = images.build_kustos(workdir / "kustos.tar", workdir)
    node_cluster.load_image(archive)
    return "kustos:0.1.0"
