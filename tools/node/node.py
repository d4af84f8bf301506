"""The local node: containerd, kubelet, kube-scheduler, kube-proxy and CoreDNS beside the
control plane.

Owns what a node changes on the machine and what it runs: the machine-wide node lock, the
pod bridge and its sysctls, the iptables rules that keep pod traffic on this machine, the
configuration files of containerd (private socket, root and state), the bridge CNI, the
kubelet and kube-proxy, the cluster DNS (CoreDNS and its Service), the hostPath
PersistentVolumes, and the undoing of all of it.
``tools/controlplane/cluster.py`` owns the PKI and the processes: it asks this module for
the host preparation, the commands to run, and the cleanup.

One node per machine: kube-proxy's iptables chains, the bridge and the sysctls are
machine-wide, so every node user holds ``LOCK_FILE`` (an flock held by a small holder process
for as long as the node lives; a crash releases it). Control planes without a node still run
side by side. Nothing is bound on, or routed to, 169.254.0.0/16; pods reach the host only at
the bridge's gateway address, and every forwarded packet that would leave by another
interface is dropped.

Cluster DNS: CoreDNS (``tools/dns``: only the plugins used here, no forwarding plugin in the
binary) runs on the host, bound to the gateway address on a free port, and answers only
``cluster.local`` from the Kubernetes API (services, EndpointSlices, namespaces: its own
client certificate and ClusterRole). A selector-less ``kube-dns`` Service in kube-system
(a fixed ClusterIP, port 53) has one EndpointSlice pointing at it, so kube-proxy carries
pods' queries there, and the kubelet's ``clusterDNS`` names that ClusterIP: pods get the
standard ``resolv.conf`` (search ``<ns>.svc.cluster.local svc.cluster.local
cluster.local``, ``ndots:5``). Any other name is refused by CoreDNS itself: no query is
ever sent off the machine. Its process stops with the node; the Service's iptables rules
are kube-proxy's ``KUBE-*`` chains, which down removes.

Facts behind the settings (each was a blocker on these machines): ``/work/shared/NODE-NOTES.md``
in the project's notes; summarized where each setting is made.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BRIDGE",
    "CLUSTER_DOMAIN",
    "DNS_USER",
    "GATEWAY",
    "LOCK_FILE",
    "POD_CIDR",
    "NodeError",
    "NodeLayout",
    "acquire_lock",
    "build_binaries",
    "build_dns",
    "cleanup_host",
    "dns_answers",
    "dns_objects",
    "prepare_host",
]

HERE = Path(__file__).resolve().parent
BRIDGE = "kustos0"
POD_CIDR = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
CLUSTER_DOMAIN = "cluster.local"
# The user CoreDNS's client certificate names (bound to the ClusterRole of dns_objects).
DNS_USER = "system:kustos:coredns"
LOCK_FILE = Path("/run/lock/kustos-node.lock")
OWNER_FILE = Path("/run/lock/kustos-node.owner")
# Our rules live in these chains of the mangle table, jumped to first from its INPUT and
# FORWARD: mangle runs before filter, so kube-proxy's filter rules (which ACCEPT some
# forwarded traffic, e.g. marked for masquerading) never bypass them. Down deletes both.
TABLE = "mangle"
CHAIN_FORWARD = "KUSTOS-NODE-FORWARD"
CHAIN_INPUT = "KUSTOS-NODE-INPUT"
# Sysctls the node needs (routing between the bridge and the host, bridged traffic through
# iptables so kube-proxy's DNAT works between pods on the bridge) and those kube-proxy may
# change. Their previous values are recorded and restored by down.
SYSCTLS_SET = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
}
SYSCTLS_WATCHED = (
    *SYSCTLS_SET,
    # The kubelet's container manager insists on these (protectKernelDefaults: true only
    # makes it refuse to start when they differ), so it sets them; down restores them.
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "net/ipv4/conf/all/route_localnet",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
# containerd's CRI pins each pod's network namespace here (machine-wide).
NETNS_DIR = Path("/run/netns")
KUBEPODS = "kubepods"


class NodeError(RuntimeError):
    """The node could not be built, prepared or started."""


def build_binaries() -> Path:
    """Build (or reuse the cached) kubelet, kube-scheduler and kube-proxy; return their dir."""
    override = os.environ.get("KUSTOS_NODE_BIN")
    if override:
        return Path(override)
    proc = subprocess.run(
        ["bash", str(HERE / "build.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise NodeError(f"tools/node/build.sh failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


def build_dns() -> Path:
    """Build (or reuse the cached) CoreDNS of ``tools/dns``; return the directory holding it."""
    override = os.environ.get("KUSTOS_DNS_BIN")
    if override:
        return Path(override)
    build = HERE.parent / "dns" / "build.sh"
    proc = subprocess.run(["bash", str(build)], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise NodeError(f"tools/dns/build.sh failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


def ensure_packages() -> None:
    """containerd, runc, CNI plugins, conntrack, iptables... from Debian when missing."""
    proc = subprocess.run(["bash", str(HERE / "ensure-packages.sh")], check=False)
    if proc.returncode != 0:
        raise NodeError("tools/node/ensure-packages.sh failed")


# --- the machine-wide lock ------------------------------------------------------------------


def acquire_lock(owner: str, timeout: float) -> int:
    """Take the node lock (waiting up to ``timeout`` s) and return its open file descriptor.

    The caller passes the descriptor to a holder process that lives as long as the node, then
    closes its own copy: the lock is held while any process has the descriptor open.
    """
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = OWNER_FILE.read_text().strip() if OWNER_FILE.exists() else "unknown"
            if time.monotonic() >= deadline:
                os.close(fd)
                raise NodeError(
                    f"another node runs on this machine ({holder}); one node per machine: "
                    f"stop it (make cluster-down there) or start without a node (NODE=0)"
                ) from None
            if not told:
                print(f"waiting for the machine's node lock, held by {holder}", flush=True)
                told = True
            time.sleep(1)
    OWNER_FILE.write_text(f"{owner} (pid {os.getpid()})\n")
    return fd


# --- host changes -----------------------------------------------------------------------


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _iptables_rules() -> dict[str, list[list[str]]]:
    """Our chains' rules. FORWARD: only bridge-to-bridge traffic (pods to pods, also after
    kube-proxy's DNAT) is forwarded; anything else touching the pod range or the bridge is
    dropped, so no pod packet leaves the machine and nothing outside reaches a pod. INPUT: the
    pod range's addresses (the apiserver and the kubelet listen on the gateway) only from the
    bridge or loopback; no pod reaches a link-local address."""
    return {
        CHAIN_FORWARD: [
            ["-i", BRIDGE, "-o", BRIDGE, "-j", "RETURN"],
            ["-i", BRIDGE, "-j", "DROP"],
            ["-o", BRIDGE, "-j", "DROP"],
            ["-s", POD_CIDR, "-j", "DROP"],
            ["-d", POD_CIDR, "-j", "DROP"],
        ],
        CHAIN_INPUT: [
            ["-i", BRIDGE, "-d", "169.254.0.0/16", "-j", "DROP"],
            ["-i", BRIDGE, "-j", "RETURN"],
            ["-i", "lo", "-j", "RETURN"],
            ["-d", POD_CIDR, "-j", "DROP"],
        ],
    }


def _remove_iptables() -> None:
    for chain, parent in ((CHAIN_FORWARD, "FORWARD"), (CHAIN_INPUT, "INPUT")):
        while _run("iptables", "-t", TABLE, "-D", parent, "-j", chain, check=False).returncode == 0:
            pass
        _run("iptables", "-t", TABLE, "-F", chain, check=False)
        _run("iptables", "-t", TABLE, "-X", chain, check=False)


def prepare_host(saved: Path) -> None:
    """Record the machine's state (sysctls, network namespaces), set the sysctls, create the
    bridge with the gateway address, add the rules.

    The bridge exists before the apiserver starts, because the apiserver listens on the
    gateway (the one host address pods can reach); the CNI bridge plugin adopts it.
    """
    if not saved.exists():
        sysctls = {}
        for key in SYSCTLS_WATCHED:
            with contextlib.suppress(OSError):
                sysctls[key] = _sysctl_path(key).read_text().strip()
        before = {
            "sysctls": sysctls,
            "netns_dir": NETNS_DIR.is_dir(),
            "netns": sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else [],
        }
        saved.write_text(json.dumps(before, indent=2) + "\n")
    for key, value in SYSCTLS_SET.items():
        try:
            _sysctl_path(key).write_text(value)
        except OSError as e:
            raise NodeError(f"cannot set sysctl {key}={value}: {e}") from e
    if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = _run("ip", "-o", "-4", "addr", "show", "dev", BRIDGE).stdout
    if f" {GATEWAY}/" not in addrs:
        _run("ip", "addr", "add", f"{GATEWAY}/{POD_CIDR.split('/')[1]}", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    _remove_iptables()
    for chain, parent in ((CHAIN_FORWARD, "FORWARD"), (CHAIN_INPUT, "INPUT")):
        _run("iptables", "-t", TABLE, "-N", chain)
        for rule in _iptables_rules()[chain]:
            _run("iptables", "-t", TABLE, "-A", chain, *rule)
        _run("iptables", "-t", TABLE, "-I", parent, "1", "-j", chain)
    _wait_address_usable(GATEWAY)


def _wait_address_usable(address: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((address, 0))
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise NodeError(f"the bridge address {address} is not usable: {e}") from e
            time.sleep(0.1)


def kill_pods(layout: NodeLayout) -> None:
    """SIGKILL every process in the kubelet's pod cgroups and the shims of our containerd."""
    for _ in range(50):
        pids = set(_cgroup_pids()) | set(_shim_pids(layout.containerd_socket))
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 9)
        time.sleep(0.1)


def _cgroup_pids() -> list[int]:
    pids: list[int] = []
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else ():
        base = hierarchy / KUBEPODS
        if not base.is_dir():
            continue
        # os.walk, not rglob: pod cgroups vanish while we walk (the kubelet and containerd
        # remove them as pods die), and os.walk skips a directory that is gone.
        for directory, _dirs, files in os.walk(base):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError, ValueError):
                    text = (Path(directory) / "cgroup.procs").read_text()
                    pids += [int(p) for p in text.split()]
    return pids


def _shim_pids(sock: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(sock).encode() in argv:
            found.append(int(proc.name))
    return found


def _unmount_under(root: Path) -> None:
    """Unmount everything mounted under ``root`` (deepest first): the kubelet's volumes,
    containerd's rootfs overlays and sandbox /dev/shm mounts."""
    for _ in range(3):
        mounts = []
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].encode().decode("unicode_escape")
                if point == str(root) or point.startswith(f"{root}/"):
                    mounts.append(point)
        if not mounts:
            return
        for point in sorted(set(mounts), key=lambda p: p.count("/"), reverse=True):
            _run("umount", "-l", point, check=False)


def _remove_kube_chains() -> None:
    """Every KUBE-* chain left in any table, v4 and v6 (kube-proxy --cleanup leaves the
    kubelet's KUBE-FIREWALL and the canaries): one node per machine, so all are ours."""
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle", "raw"):
            listing = _run(tool, "-t", table, "-S", check=False).stdout.splitlines()
            chains = [line.split()[1] for line in listing if line.startswith("-N KUBE-")]
            if not chains:
                continue
            for line in listing:
                parts = line.split()
                if (
                    parts[:1] == ["-A"]
                    and not parts[1].startswith("KUBE-")
                    and any(f"-j {c}" in line for c in chains)
                ):
                    _run(tool, "-t", table, "-D", *parts[1:], check=False)
            for chain in chains:
                _run(tool, "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(tool, "-t", table, "-X", chain, check=False)


def _remove_netns(before: dict[str, object]) -> None:
    """The pods' network namespaces containerd pinned (and their veths, with the bridge)."""
    links = _run("ip", "-o", "link", "show", "master", BRIDGE, check=False).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        _run("ip", "link", "del", name, check=False)
    if not NETNS_DIR.is_dir():
        return
    kept = set(before.get("netns", []))  # type: ignore[arg-type]
    for entry in NETNS_DIR.iterdir():
        if entry.name.startswith("cni-") and entry.name not in kept:
            _run("umount", "-l", str(entry), check=False)
            entry.unlink(missing_ok=True)
    if not before.get("netns_dir", True):
        with contextlib.suppress(OSError):
            NETNS_DIR.rmdir()


def _remove_cgroups() -> None:
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.exists() else ():
        base = hierarchy / KUBEPODS
        if not base.is_dir():
            continue
        dirs = sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, base]:
            with contextlib.suppress(OSError):
                d.rmdir()


def cleanup_host(layout: NodeLayout, proxy_binary: Path | None) -> None:
    """Undo what the node did to the machine: pods, mounts, cgroups, the KUBE-* iptables
    chains, our rules, the pods' network namespaces and veths, the bridge, the sysctls.
    Safe to run twice or after a crash."""
    kill_pods(layout)
    _unmount_under(layout.root)
    _remove_cgroups()
    if proxy_binary is not None and proxy_binary.exists():
        # kube-proxy's own cleanup removes the KUBE-* chains and rules it created.
        _run(str(proxy_binary), "--cleanup", "--v=0", check=False)
    _remove_kube_chains()
    _remove_iptables()
    try:
        before = json.loads(layout.saved_host.read_text())
    except (OSError, ValueError):
        before = {}
    _remove_netns(before)
    _run("ip", "link", "del", BRIDGE, check=False)
    for key, value in before.get("sysctls", {}).items():
        with contextlib.suppress(OSError):
            _sysctl_path(key).write_text(value)
    OWNER_FILE.unlink(missing_ok=True)


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeLayout:
    """Where one node keeps its state: everything lives under ``root`` (the cluster's
    state directory), so two clusters never share a socket, a root or a log directory."""

    root: Path

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def saved_host(self) -> Path:
        """The machine's state recorded before the node changed it (restored by down)."""
        return self.root / "host-before.json"

    def path(self, name: str) -> Path:
        return self.root / name


def node_name() -> str:
    """The machine's hostname: the kubelet's default, and a name the apiserver can resolve."""
    return socket.gethostname().lower()


def write_configs(
    layout: NodeLayout,
    *,
    pki: Path,
    sandbox_image: str,
    ports: dict[str, int],
    kubeconfigs: dict[str, Path],
    cluster_dns: str,
) -> dict[str, list[str]]:
    """Write containerd's, the CNI's, the kubelet's, kube-proxy's and CoreDNS's configuration
    and return each component's command-line arguments (binaries resolved by the caller).
    ``cluster_dns`` is the ClusterIP of the ``kube-dns`` Service (``dns_objects``)."""
    root = layout.root
    for d in (
        "containerd/root",
        "containerd/state",
        "cni/net.d",
        "cni/ipam",
        "kubelet",
        "pod-logs",
        "runc",
        "registry-hosts/_default",
        "pv",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    # No registry: every pull goes to a closed local port and fails at once, so no image
    # request ever leaves the machine. Images are imported (tools/images).
    (root / "registry-hosts/_default/hosts.toml").write_text(
        'server = "http://127.0.0.1:9"\n\n[host."http://127.0.0.1:9"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    containerd_toml = f"""version = 2
root = "{root / "containerd/root"}"
state = "{root / "containerd/state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{root / "containerd-ttrpc.sock"}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc create
  # ("failed to update /proc/self/oom_score_adj").
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc, not crun: crun refuses the hybrid cgroup layout of these machines.
        BinaryName = "/usr/sbin/runc"
        Root = "{root / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{root / "cni/net.d"}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{root / "registry-hosts"}"
"""
    (root / "containerd.toml").write_text(containerd_toml)

    cni = {
        "cniVersion": "1.0.0",
        "name": "kustos",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(root / "cni/ipam"),
                },
            }
        ],
    }
    (root / "cni/net.d/10-kustos.conflist").write_text(json.dumps(cni, indent=2) + "\n")
    # The "host" resolver the kubelet hands to pods with dnsPolicy Default (and whose search
    # list it appends for ClusterFirst ones): none that leads off the machine. Pods with the
    # default policy (ClusterFirst) get clusterDNS, below.
    (root / "resolv.conf").write_text("nameserver 127.0.0.1\noptions ndots:1\n")
    (root / "Corefile").write_text(_corefile(ports, kubeconfigs["coredns"]))

    kubelet_config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": GATEWAY,
        "port": ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports["kubelet-healthz"],
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "podLogsDir": str(root / "pod-logs"),
        "resolvConf": str(root / "resolv.conf"),
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [cluster_dns],
        # Hybrid cgroup v1 machines, no systemd, no swap accounting.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        # False: the kubelet sets kernel.panic, panic_on_oops and vm.overcommit_memory (true
        # only makes it refuse to start when they differ); they are recorded before and
        # restored by down.
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
        # Imported images cannot be pulled again: never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "nodeStatusUpdateFrequency": "2s",
        "syncFrequency": "10s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "localStorageCapacityIsolation": True,
    }
    (root / "kubelet.json").write_text(json.dumps(kubelet_config, indent=2) + "\n")

    proxy_config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfigs["kube-proxy"])},
        "mode": "iptables",
        "hostnameOverride": node_name(),
        "clusterCIDR": POD_CIDR,
        "bindAddress": GATEWAY,
        "healthzBindAddress": f"127.0.0.1:{ports['proxy-healthz']}",
        "metricsBindAddress": f"127.0.0.1:{ports['proxy-metrics']}",
        # NodePorts only on the bridge address: nothing is exposed on an external interface.
        "nodePortAddresses": [f"{GATEWAY}/32"],
        # Leave the machine's conntrack settings and route_localnet alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {
            "localhostNodePorts": False,
            "masqueradeAll": False,
            "syncPeriod": "30s",
            "minSyncPeriod": "0s",
        },
    }
    (root / "kube-proxy.json").write_text(json.dumps(proxy_config, indent=2) + "\n")

    return {
        "containerd": [f"--config={root / 'containerd.toml'}", "--log-level=warn"],
        "kubelet": [
            f"--config={root / 'kubelet.json'}",
            f"--kubeconfig={kubeconfigs['kubelet']}",
            f"--root-dir={root / 'kubelet'}",
            f"--cert-dir={root / 'kubelet-certs'}",
            f"--node-ip={GATEWAY}",
            f"--hostname-override={node_name()}",
            "--v=1",
        ],
        "kube-scheduler": [
            f"--kubeconfig={kubeconfigs['kube-scheduler']}",
            f"--authentication-kubeconfig={kubeconfigs['kube-scheduler']}",
            f"--authorization-kubeconfig={kubeconfigs['kube-scheduler']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports['scheduler']}",
            "--leader-elect=false",
        ],
        "kube-proxy": [f"--config={root / 'kube-proxy.json'}", "--v=1"],
        "coredns": [f"-conf={root / 'Corefile'}"],
    }


def _corefile(ports: dict[str, int], kubeconfig: Path) -> str:
    """One server block, for the cluster domain only: a query for any other name matches no
    zone and CoreDNS answers REFUSED itself (there is no `forward` plugin in the binary; see
    tools/dns/coredns/main.go). Bound to the gateway address (what kube-proxy DNATs the
    kube-dns ClusterIP to), on a per-cluster port. Denials and errors are logged (names
    only: a DNS query carries no secret)."""
    return f"""{CLUSTER_DOMAIN}:{ports["dns"]} {{
    bind {GATEWAY}
    errors
    log . {{
        class denial error
    }}
    kubernetes {CLUSTER_DOMAIN} {{
        kubeconfig {kubeconfig}
        ttl 5
    }}
    cache 5
}}
"""


def dns_answers(port: int, timeout: float = 2.0) -> bool:
    """Whether CoreDNS, on the gateway at ``port``, answers for the ``kubernetes`` Service:
    it serves only once its kubernetes plugin has synced with the API."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [GATEWAY]
    resolver.port = port
    try:
        resolver.resolve(f"kubernetes.default.svc.{CLUSTER_DOMAIN}", "A", lifetime=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return True


def dns_objects(cluster_dns: str, port: int) -> list[dict[str, object]]:
    """The cluster DNS's objects: what CoreDNS may read (services, EndpointSlices, namespaces:
    list and watch, nothing else), and the `kube-dns` Service in kube-system at
    ``cluster_dns`` with a hand-made EndpointSlice to CoreDNS on the gateway (no selector:
    CoreDNS is a host process, not a pod). Port 53 on the ClusterIP, ``port`` behind it."""
    service = "kube-dns"
    names = ("dns", "dns-tcp")
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "kustos:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "kustos:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "kustos:coredns",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": DNS_USER}
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": service,
                "namespace": "kube-system",
                "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
            },
            "spec": {
                "clusterIP": cluster_dns,
                "ports": [
                    {"name": names[0], "port": 53, "protocol": "UDP", "targetPort": port},
                    {"name": names[1], "port": 53, "protocol": "TCP", "targetPort": port},
                ],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-host",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": service,
                    "endpointslice.kubernetes.io/managed-by": "node.tools.kustos.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [GATEWAY], "conditions": {"ready": True}}],
            "ports": [
                {"name": names[0], "port": port, "protocol": "UDP"},
                {"name": names[1], "port": port, "protocol": "TCP"},
            ],
        },
    ]


def pv_objects(layout: NodeLayout, count: int = 12, size: str = "5Gi") -> list[dict[str, object]]:
    """A default StorageClass (no provisioner) and a pool of hostPath PersistentVolumes under
    the node's state directory, so the manifests' claims bind; down removes them with it."""
    objs: list[dict[str, object]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "kustos-local",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Retain",
        }
    ]
    for i in range(count):
        path = layout.path(f"pv/pv{i:02d}")
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # pods run as any non-root user; hostPath ignores fsGroup
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"kustos-local-pv{i:02d}"},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "kustos-local",
                    "hostPath": {"path": str(path), "type": "Directory"},
                },
            }
        )
    return objs
