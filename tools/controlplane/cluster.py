#!/usr/bin/env python3
"""A local Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager, and a node.

Owns everything about running the binaries that ``build.sh`` produces: the PKI (a CA, the
apiserver's serving certificate, client certificates, the ServiceAccount signing key and
the key that encrypts Secrets at rest), the choice of free ports, the detached processes
(pidfiles and logs in the state directory), readiness, and the admin kubeconfig.

Without a node (the default, and what fast test tiers use) it runs on loopback and pods
never run; everything that needs only the API and the controllers (CRDs, RBAC,
ownerReference garbage collection, namespace deletion, ServiceAccounts,
TokenRequest/TokenReview) is real, and several such control planes run side by side.
With ``node=True`` it also runs containerd, the kubelet, kube-scheduler, kube-proxy and
CoreDNS, the cluster DNS (``tools/node/node.py`` owns their configuration and the machine
changes), every controller, and the apiserver on the pod bridge's gateway, where pods reach
it through the ``kubernetes`` Service (``kubernetes.default.svc``, a name its certificate
carries). One node per machine (a machine-wide lock).

Usable from the command line (``up``, ``down``, ``status``) and as a library
(``ControlPlane``), which is how the test fixtures start a private control plane.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["REPO", "ControlPlane", "build_binaries", "main"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SERVICE_CIDR = "10.0.0.0/24"
# The kube-dns Service's ClusterIP (the kubelet's clusterDNS), as kubeadm picks it: the
# tenth address of the Service range.
CLUSTER_DNS = str(ipaddress.ip_network(SERVICE_CIDR)[10])
SA_ISSUER = "https://kubernetes.default.svc"
# Only the apiserver's own audience: a token minted for Kustos (audience "kustos") must not be
# accepted by the Kubernetes API, nor a plain Kubernetes token by Kustos. Kustos checks its
# audience itself through TokenReview's spec.audiences.
API_AUDIENCES = ("https://kubernetes.default.svc",)
# What the operator and the tests rely on: ownerReference GC, namespace deletion,
# ServiceAccounts (and their legacy token Secrets), the kube-root-ca.crt ConfigMap and the
# aggregation of ClusterRoles labelled for admin/edit/view.
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
)
# Stopped in this order; started in the reverse.
COMPONENTS = ("kube-controller-manager", "kube-apiserver", "etcd")
NODE_COMPONENTS = ("coredns", "kube-proxy", "kube-scheduler", "kubelet", "containerd")
# With a node: every controller a user expects (node lifecycle, deployments, replica sets,
# endpoints, PersistentVolume binding, jobs, disruption budgets...).
NODE_CONTROLLERS = ("*",)
NODE_LOCK_HOLDER = "node-lock"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


def build_binaries() -> Path:
    """Build (or reuse the cached) binaries and return the directory holding them."""
    override = os.environ.get("KUSTOS_CONTROLPLANE_BIN")
    if override:
        return Path(override)
    proc = subprocess.run(
        ["bash", str(HERE / "build.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise ControlPlaneError(f"tools/controlplane/build.sh failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int, binary: str) -> bool:
    """True if ``pid`` is a live (not zombie) process running ``binary``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and bool(cmdline) and cmdline[0].decode() == binary


def _ended(pid: int, binary: str) -> str | None:
    """How a component being started ended (None: it is still running).

    A process this one spawned is asked with waitpid: right after `subprocess.Popen`
    returns, the child's exec may not have set up its arguments yet, so /proc/<pid>/cmdline
    reads empty for a moment and `_pid_alive` would call a starting process dead."""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (a cluster started by another process)
        return None if _pid_alive(pid, binary) else "gone"
    if waited == 0:
        return None
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # not our child: init reaps it
        os.waitpid(pid, os.WNOHANG)


# --- PKI ----------------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.write_bytes(data)
    path.chmod(mode)


def _issue(
    ca_key: ec.EllipticCurvePrivateKey | None,
    ca_cert: x509.Certificate | None,
    subject: x509.Name,
    *,
    is_ca: bool = False,
    server_names: tuple[str, ...] = (),
    client: bool = False,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject if ca_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        # Strict verifiers (Python 3.13's default context) insist on the key identifiers.
        assert ca_cert is not None
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        usages = []
        if server_names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            sans: list[x509.GeneralName] = []
            for name in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    sans.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    cert = builder.sign(ca_key or key, hashes.SHA256())
    return key, cert


def _make_pki(pki: Path, node: str | None = None, address: str = "127.0.0.1") -> None:
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _issue(
        None,
        None,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kustos-local-ca")]),
        is_ca=True,
    )
    _write(pki / "ca.key", _pem_key(ca_key))
    _write(pki / "ca.crt", ca.public_bytes(serialization.Encoding.PEM), 0o644)

    first_service_ip = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))
    names = (
        "127.0.0.1",
        *((address,) if address != "127.0.0.1" else ()),
        "localhost",
        first_service_ip,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    )
    leaves = {
        "apiserver": (
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            names,
            False,
        ),
        # Both clients are cluster admins; the controller manager runs every loop with its
        # own credentials (--use-service-account-credentials=false).
        "admin": (
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "kustos-admin"),
                ]
            ),
            (),
            True,
        ),
        "controller-manager": (
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "system:kube-controller-manager"),
                ]
            ),
            (),
            True,
        ),
    }
    if node is not None:
        leaves.update(_node_leaves(node, address))
    for stem, (subject, sans, client) in leaves.items():
        key, cert = _issue(ca_key, ca, subject, server_names=sans, client=client)
        _write(pki / f"{stem}.key", _pem_key(key))
        _write(pki / f"{stem}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)

    # Secrets at rest in etcd (projected Secrets hold real values): secretbox, a fresh key.
    _write(
        pki / "encryption.yaml",
        json.dumps(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": [
                    {
                        "resources": ["secrets"],
                        "providers": [
                            {
                                "secretbox": {
                                    "keys": [
                                        {
                                            "name": "key1",
                                            "secret": base64.b64encode(os.urandom(32)).decode(),
                                        }
                                    ]
                                }
                            },
                            {"identity": {}},
                        ],
                    }
                ],
            },
            indent=2,
        ).encode(),
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(pki / "sa.key", _pem_key(sa_key))
    _write(
        pki / "sa.pub",
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        0o644,
    )


def _node_leaves(node: str, address: str) -> dict[str, tuple[x509.Name, tuple[str, ...], bool]]:
    """The node's certificates: the kubelet as a node (group system:nodes, which the Node
    authorizer recognizes), its serving certificate, the scheduler and kube-proxy under the
    users the default RBAC bindings name, and the apiserver's client for kubelets."""

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
        return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    return {
        "kubelet": (name(f"system:node:{node}", "system:nodes"), (), True),
        "kubelet-serving": (name(f"system:node:{node}", "system:nodes"), (address, node), False),
        "kube-scheduler": (name("system:kube-scheduler"), (), True),
        "kube-proxy": (name("system:kube-proxy"), (), True),
        "coredns": (name(node_module().DNS_USER), (), True),
        "apiserver-kubelet-client": (
            name("kube-apiserver-kubelet-client", "system:masters"),
            (),
            True,
        ),
    }


def _kubeconfig(server: str, pki: Path, user: str) -> str:
    """A kubeconfig with the CA and client credentials embedded (so it can be copied)."""

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    # JSON is valid YAML, and keeps this module free of a YAML dependency.
    return (
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "kustos-local",
                        "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")},
                    }
                ],
                "users": [
                    {
                        "name": user,
                        "user": {
                            "client-certificate-data": b64(f"{user}.crt"),
                            "client-key-data": b64(f"{user}.key"),
                        },
                    }
                ],
                "contexts": [
                    {
                        "name": "kustos-local",
                        "context": {
                            "cluster": "kustos-local",
                            "user": user,
                            "namespace": "default",
                        },
                    }
                ],
                "current-context": "kustos-local",
            },
            indent=2,
        )
        + "\n"
    )


# --- processes ----------------------------------------------------------------------------


@dataclass
class State:
    """What ``up`` records in ``state.json`` so that ``status`` and ``down`` can find it."""

    bin_dir: str
    server: str
    kubeconfig: str
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    node_bin_dir: str = ""  # set when the cluster has a node
    node_name: str = ""
    dns_bin_dir: str = ""  # CoreDNS, with the node


def _tool_module(rel: str, name: str) -> ModuleType:
    """Load a sibling tool (``tools/node/node.py``...) by path: tools/ is not a package."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / rel)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def node_module() -> ModuleType:
    return _tool_module("node/node.py", "kustos_tools_node")


def images_module() -> ModuleType:
    return _tool_module("images/images.py", "kustos_tools_images")


def _binary(state: State, name: str) -> str:
    """The absolute path a component was started from (what its /proc cmdline shows)."""
    if name in COMPONENTS:
        return str(Path(state.bin_dir) / name)
    if name in ("kubelet", "kube-scheduler", "kube-proxy"):
        return str(Path(state.node_bin_dir) / name)
    if name == "coredns":
        return str(Path(state.dns_bin_dir) / name)
    found = shutil.which("sleep" if name == NODE_LOCK_HOLDER else name) or name
    return os.path.realpath(found)


class ControlPlane:
    """One cluster whose state (PKI, etcd data, pids, logs, node) lives in ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        kubeconfig: Path,
        kubectl_link: Path | None = None,
        *,
        node: bool = False,
        node_lock_timeout: float = 0.0,
        on_node_lock: Callable[[], object] | None = None,
    ):
        self.state_dir = state_dir.resolve()
        self.kubeconfig = kubeconfig.resolve()
        self.kubectl_link = kubectl_link
        self.node = node
        self.node_lock_timeout = node_lock_timeout
        # Called once the machine's node lock is ours, before any host change: the moment
        # to record the machine as it is without a node (another node may have run until now).
        self.on_node_lock = on_node_lock
        # The lock holder a `down(keep_lock=True)` left running: the next `up` adopts it.
        self._kept_holder: int | None = None

    def _components(self, state: State) -> tuple[str, ...]:
        if not state.node_bin_dir:
            return COMPONENTS
        return (*NODE_COMPONENTS, *COMPONENTS, NODE_LOCK_HOLDER)

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _load(self) -> State | None:
        try:
            return State(**json.loads(self._state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _ssl_context(self) -> ssl.SSLContext:
        pki = self.state_dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def _get(self, server: str, path: str, timeout: float = 2.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(  # noqa: S310 - https to our own loopback apiserver
                server + path, context=self._ssl_context(), timeout=timeout
            ) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode(errors="replace")
        except (OSError, ssl.SSLError) as e:
            return 0, str(e)

    def healthy(self) -> bool:
        """All processes alive and the apiserver ready."""
        state = self._load()
        if state is None or not self.kubeconfig.exists():
            return False
        if bool(state.node_bin_dir) != self.node:
            return False
        for name in self._components(state):
            pid = state.pids.get(name)
            if pid is None or not _pid_alive(pid, _binary(state, name)):
                return False
        return self._get(state.server, "/readyz")[0] == 200

    def status(self) -> str:
        state = self._load()
        if state is None:
            return "down"
        lines = [f"server     {state.server}", f"kubeconfig {state.kubeconfig}"]
        for name in self._components(state):
            pid = state.pids.get(name, 0)
            alive = pid and _pid_alive(pid, _binary(state, name))
            lines.append(f"{name:<24} pid {pid:<8} {'running' if alive else 'DEAD'}")
        code, _ = self._get(state.server, "/readyz")
        lines.append(f"readyz     {code or 'unreachable'}")
        return "\n".join(lines)

    def up(self, timeout: float = 60.0) -> Path:
        """Start the control plane unless it is already running; return the kubeconfig."""
        if self.healthy():
            return self.kubeconfig
        kept = self._kept_holder  # adopted below; until then a plain down() still ends it
        # Clear whatever a crashed or half-started run left behind.
        self.down(keep_lock=kept is not None)
        bin_dir = build_binaries()
        node_bin_dir, dns_bin_dir, pause = self._prepare_node() if self.node else (None,) * 3
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        pki = self.state_dir / "pki"
        node_name = node_module().node_name() if self.node else ""
        address = node_module().GATEWAY if self.node else "127.0.0.1"
        names = ["etcd", "etcd-peer", "apiserver", "cm"]
        if self.node:
            names += ["kubelet", "kubelet-healthz", "scheduler", "proxy-healthz", "proxy-metrics"]
            names += ["dns"]
        ports = {k: _free_port() for k in names}
        server = f"https://{address}:{ports['apiserver']}"
        state = State(
            bin_dir=str(bin_dir),
            server=server,
            kubeconfig=str(self.kubeconfig),
            ports=ports,
            node_bin_dir=str(node_bin_dir or ""),
            node_name=node_name,
            dns_bin_dir=str(dns_bin_dir or ""),
        )
        self._save(state)
        if self.node:
            if kept is not None and _pid_alive(kept, _binary(state, NODE_LOCK_HOLDER)):
                state.pids[NODE_LOCK_HOLDER] = kept  # the lock never left us
                self._save(state)
                # down's cleanup removed the owner note that waiting runs print.
                node_module().OWNER_FILE.write_text(f"{self.state_dir} (pid {os.getpid()})\n")
            else:
                self._take_node_lock(state)
            self._kept_holder = None
            if self.on_node_lock is not None:
                self.on_node_lock()
        try:
            _make_pki(pki, node_name or None, address)
            if self.node:
                layout = node_module().NodeLayout(self.state_dir / "node")
                layout.root.mkdir(parents=True, exist_ok=True)
                node_module().prepare_host(layout.saved_host)
        except BaseException:
            self.down()
            raise

        cm_kubeconfig = self.state_dir / "controller-manager.kubeconfig"
        _write(cm_kubeconfig, _kubeconfig(server, pki, "controller-manager").encode())
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        try:
            self._spawn(
                state,
                "etcd",
                [
                    "--name=kustos",
                    f"--data-dir={self.state_dir / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=kustos={peer_url}",
                    # A throwaway development store: durability is not worth the fsync latency.
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
            )
            self._wait(lambda: _http_ok(f"{etcd_url}/health"), "etcd", state, timeout)
            self._spawn(
                state,
                "kube-apiserver",
                [
                    f"--bind-address={address}",
                    f"--advertise-address={address}",
                    f"--secure-port={ports['apiserver']}",
                    f"--cert-dir={pki}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    f"--etcd-servers={etcd_url}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    f"--service-account-issuer={SA_ISSUER}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--api-audiences={','.join(API_AUDIENCES)}",
                    # As OpenShift and other hardened clusters run: setting blockOwnerDeletion
                    # needs `update` on the owner's finalizers (Kustos's projected Secrets do).
                    "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
                    f"--encryption-provider-config={pki / 'encryption.yaml'}",
                    "--allow-privileged=true",
                    *(
                        self._node_apiserver_args(pki)
                        if self.node
                        else (
                            "--authorization-mode=RBAC",
                            # No node: nothing serves the `kubernetes` Service, and an endpoint
                            # pointing at loopback would be wrong anyway.
                            "--endpoint-reconciler-type=none",
                        )
                    ),
                ],
            )
            self._wait(
                lambda: self._get(server, "/readyz")[0] == 200, "kube-apiserver", state, timeout
            )
            _write(self.kubeconfig, _kubeconfig(server, pki, "admin").encode())
            self._spawn(
                state,
                "kube-controller-manager",
                [
                    f"--kubeconfig={cm_kubeconfig}",
                    f"--authentication-kubeconfig={cm_kubeconfig}",
                    f"--authorization-kubeconfig={cm_kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['cm']}",
                    f"--cert-dir={self.state_dir / 'cm-certs'}",
                    f"--controllers={','.join(NODE_CONTROLLERS if self.node else CONTROLLERS)}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    "--use-service-account-credentials=false",
                    "--leader-elect=false",
                ],
            )
            cm_health = f"https://127.0.0.1:{ports['cm']}/healthz"
            self._wait(
                lambda: _http_ok(cm_health, insecure=True),
                "kube-controller-manager",
                state,
                timeout,
            )
            # The ServiceAccount controller has done its first pass: controllers are running.
            self._wait(
                lambda: (
                    self._get(server, "/api/v1/namespaces/default/serviceaccounts/default")[0]
                    == 200
                ),
                "kube-controller-manager (default ServiceAccount)",
                state,
                timeout,
            )
            if self.node:
                assert pause is not None
                self._start_node(state, pki, pause, timeout)
        except BaseException:
            self.down()
            raise
        if self.kubectl_link is not None:
            self.kubectl_link.parent.mkdir(parents=True, exist_ok=True)
            self.kubectl_link.unlink(missing_ok=True)
            self.kubectl_link.symlink_to(bin_dir / "kubectl")
        what = f"control plane and node {node_name}" if self.node else "control plane"
        self._log(f"{what} up in {time.monotonic() - started:.1f}s at {server}")
        return self.kubeconfig

    # --- the node ---------------------------------------------------------------------

    def _prepare_node(self) -> tuple[Path, Path, tuple[Path, str]]:
        """Packages, node binaries, CoreDNS and the pause image: everything slow, before any
        change."""
        node = node_module()
        node.ensure_packages()
        node_bin = node.build_binaries()
        dns_bin = node.build_dns()
        pause = images_module().pause_archive()
        return node_bin, dns_bin, pause

    def _take_node_lock(self, state: State) -> None:
        """Hold the machine's node lock for as long as this cluster lives (a holder process
        keeps the flock'ed descriptor; a crash releases it)."""
        fd = node_module().acquire_lock(str(self.state_dir), self.node_lock_timeout)
        try:
            self._spawn(state, NODE_LOCK_HOLDER, ["infinity"], pass_fds=(fd,))
        finally:
            os.close(fd)

    def _node_apiserver_args(self, pki: Path) -> tuple[str, ...]:
        return (
            # The Node authorizer scopes each kubelet to its own pods' objects.
            "--authorization-mode=Node,RBAC",
            # The `kubernetes` Service's endpoint is the gateway: what pods reach.
            "--endpoint-reconciler-type=lease",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
        )

    def _start_node(self, state: State, pki: Path, pause: tuple[Path, str], timeout: float) -> None:
        node = node_module()
        layout = node.NodeLayout(self.state_dir / "node")
        kubeconfigs = {}
        for user in ("kubelet", "kube-scheduler", "kube-proxy", "coredns"):
            path = layout.path(f"{user}.kubeconfig")
            _write(path, _kubeconfig(state.server, pki, user).encode())
            kubeconfigs[user] = path
        archive, pause_tag = pause
        args = node.write_configs(
            layout,
            pki=pki,
            sandbox_image=pause_tag,
            ports=state.ports,
            kubeconfigs=kubeconfigs,
            cluster_dns=CLUSTER_DNS,
        )
        t0 = time.monotonic()
        self._spawn(state, "containerd", args["containerd"])
        sock = layout.containerd_socket
        self._wait(sock.exists, "containerd", state, timeout)
        # The sandbox image must be there before the kubelet asks for it: nothing is pulled.
        images_module().load(sock, archive)
        self._spawn(state, "kubelet", args["kubelet"])
        self._spawn(state, "kube-scheduler", args["kube-scheduler"])
        self._spawn(state, "kube-proxy", args["kube-proxy"])
        self._wait(
            lambda: self._node_ready(state.node_name),
            "kubelet (node Ready)",
            state,
            max(timeout, 120),
        )
        self._log(f"node {state.node_name} Ready {time.monotonic() - t0:.1f}s after containerd")
        self._apply(node.pv_objects(layout))
        # Cluster DNS: its RBAC and Service first, so CoreDNS's first list succeeds.
        t0 = time.monotonic()
        self._apply(node.dns_objects(CLUSTER_DNS, state.ports["dns"]))
        self._spawn(state, "coredns", args["coredns"])
        self._wait(lambda: node.dns_answers(state.ports["dns"]), "coredns", state, timeout)
        self._log(f"cluster DNS ready in {time.monotonic() - t0:.1f}s")
        self._wait(
            self._kubernetes_endpoint_published,
            "kube-apiserver (kubernetes endpoint)",
            state,
            timeout,
        )

    def _node_ready(self, name: str) -> bool:
        code, body = self._get(self._load_or_fail().server, f"/api/v1/nodes/{name}")
        if code != 200:
            return False
        node = json.loads(body)
        taints = node.get("spec", {}).get("taints") or []
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in node.get("status", {}).get("conditions", [])
        )
        # The node-lifecycle controller lifts the not-ready taint once Ready is seen.
        return ready and not any(t.get("key", "").startswith("node.kubernetes.io/") for t in taints)

    def _kubernetes_endpoint_published(self) -> bool:
        code, body = self._get(
            self._load_or_fail().server, "/api/v1/namespaces/default/endpoints/kubernetes"
        )
        return code == 200 and bool(json.loads(body).get("subsets"))

    def _load_or_fail(self) -> State:
        state = self._load()
        if state is None:
            raise ControlPlaneError(f"no state in {self.state_dir}")
        return state

    def _apply(self, objects: list[dict[str, object]]) -> None:
        kubectl = Path(self._load_or_fail().bin_dir) / "kubectl"
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        proc = subprocess.run(
            [str(kubectl), f"--kubeconfig={self.kubeconfig}", "apply", "-f", "-"],
            input=doc,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"kubectl apply failed: {proc.stderr.strip()}")

    def down(self, keep_lock: bool = False) -> None:
        """Stop the processes and delete the state (etcd data, PKI, logs) and kubeconfig.

        ``keep_lock``: the host is cleaned but the machine's node lock stays ours (its holder
        keeps running) until the next ``up`` adopts it or a plain ``down`` ends it, so no
        other run's node starts in between (the down-and-up test compares the machine there).
        """
        state = self._load()
        if state is not None:
            # The machine's pods, mounts, chains and bridge are cleaned only while our holder
            # keeps the node lock: a run that never got it (it timed out waiting, or was
            # stopped while waiting) must not tear down the node of the run that has it.
            holder = state.pids.get(NODE_LOCK_HOLDER)
            ours = holder is not None and _pid_alive(holder, _binary(state, NODE_LOCK_HOLDER))
            node = node_module() if state.node_bin_dir and ours else None
            layout = node.NodeLayout(self.state_dir / "node") if node else None
            for name in self._components(state):
                if node is not None and name == "kubelet":
                    # Stop the kubelet first so it restarts nothing, then end the pods.
                    pid = state.pids.get(name)
                    if pid is not None:
                        _stop(pid, _binary(state, name))
                    node.kill_pods(layout)
                    continue
                if node is not None and name == NODE_LOCK_HOLDER:
                    # The host is cleaned while we still hold the machine's node lock.
                    node.cleanup_host(layout, Path(state.node_bin_dir) / "kube-proxy")
                    if keep_lock:
                        self._kept_holder = state.pids.get(name)
                        continue
                pid = state.pids.get(name)
                if pid is not None:
                    _stop(pid, _binary(state, name))
        if not keep_lock and self._kept_holder is not None:
            _stop(self._kept_holder, os.path.realpath(shutil.which("sleep") or "sleep"))
            self._kept_holder = None
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.kubeconfig.unlink(missing_ok=True)

    def _save(self, state: State) -> None:
        self._state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")

    def _spawn(
        self, state: State, name: str, args: list[str], pass_fds: tuple[int, ...] = ()
    ) -> None:
        log = (self.state_dir / f"{name}.log").open("ab")
        try:
            proc = subprocess.Popen(
                [_binary(state, name), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
            )
        finally:
            log.close()
        state.pids[name] = proc.pid
        (self.state_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
        self._save(state)

    def _wait(self, ready: Callable[[], bool], name: str, state: State, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        binary = _binary(state, name.split()[0])
        while time.monotonic() < deadline:
            if ready():
                return
            pid = state.pids.get(name.split()[0])
            if pid is not None:
                ended = _ended(pid, binary)
                if ended is not None:
                    raise ControlPlaneError(
                        f"{name} exited during startup ({ended}); {self._tail(name)}"
                    )
            time.sleep(0.1)
        raise ControlPlaneError(f"{name} not ready after {timeout:.0f}s; {self._tail(name)}")

    def _tail(self, name: str) -> str:
        log = self.state_dir / f"{name.split()[0]}.log"
        try:
            lines = log.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return "no log"
        return f"last lines of {log}:\n" + "\n".join(lines)

    @staticmethod
    def _log(msg: str) -> None:
        print(msg, file=sys.stderr)


def _http_ok(url: str, insecure: bool = False) -> bool:
    ctx = None
    if insecure:  # the controller manager's self-signed health endpoint on loopback
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:  # noqa: S310
            return int(resp.status) == 200
    except (OSError, ssl.SSLError):
        return False


def _running(pid: int) -> bool:
    """True until ``pid`` has exited (a zombie counts as exited); no identity check."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _stop(pid: int, binary: str, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace``; reap it if it is our child (the test fixture)."""
    if _pid_alive(pid, binary):  # our process, not a recycled pid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            os.kill(pid, sig)
            deadline = time.monotonic() + wait
            # While exiting, /proc/PID/cmdline is already empty: poll the state instead.
            while time.monotonic() < deadline and _running(pid):
                time.sleep(0.05)
            if not _running(pid):
                break
    _reap(pid)


def main(argv: list[str] | None = None) -> int:
    local = REPO / ".local"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=local / "cluster")
    parser.add_argument("--kubeconfig", type=Path, default=local / "kubeconfig")
    parser.add_argument("--kubectl-link", type=Path, default=local / "bin" / "kubectl")
    parser.add_argument(
        "--node",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run a node (containerd, kubelet, kube-scheduler, kube-proxy, CoreDNS)",
    )
    parser.add_argument(
        "--node-lock-timeout",
        type=float,
        default=0.0,
        help="seconds to wait for another node on this machine to stop",
    )
    args = parser.parse_args(argv)
    cp = ControlPlane(
        args.state_dir,
        args.kubeconfig,
        args.kubectl_link,
        node=args.node,
        node_lock_timeout=args.node_lock_timeout,
    )
    if args.command == "up":
        try:
            print(cp.up())
        except ControlPlaneError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    elif args.command == "down":
        cp.down()
    else:
        print(cp.status())
        return 0 if cp.healthy() else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
