"""The local node: pods really run, reach the API in-cluster, and stay on this machine.

Runs on the session's node cluster (``node_cluster``). The last test stops the node, checks
that the machine is as it was before the node started, and starts it again.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.cluster_fixture import host_state
from tests.kube_helpers import apply, get, new_namespace, wait_for

pytestmark = pytest.mark.cluster


def _pod(name: str, ns: str, image: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", script],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "allowPrivilegeEscalation": False,
                    },
                    **spec.pop("container", {}),
                }
            ],
            **spec,
        },
    }


def _phase(cluster: Any, name: str, ns: str) -> str | None:
    pod = get(cluster, "pod", name, ns) or {}
    phase = pod.get("status", {}).get("phase")
    return phase if phase in ("Succeeded", "Failed") else None


def _run_pod(cluster: Any, pod: dict[str, Any]) -> tuple[str, str]:
    apply(cluster, pod)
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    phase = wait_for(lambda: _phase(cluster, name, ns), timeout=120, what=f"pod {name} done")
    logs = cluster.kubectl("logs", "-n", ns, name).stdout
    return phase, logs


def test_the_node_is_ready_without_taints(node_cluster: Any) -> None:
    nodes = json.loads(node_cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 1
    node = nodes[0]
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True"
    assert not node["spec"].get("taints")
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.4"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.6")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == "10.244.0.1"


def test_a_pod_reads_a_mounted_secret(node_cluster: Any) -> None:
    ns = new_namespace(node_cluster)
    canary = f"canary-{uuid.uuid4().hex}"
    node_cluster.kubectl(
        "create", "secret", "generic", "s", "-n", ns, f"--from-literal=value={canary}"
    )
    pod = _pod(
        "reader",
        ns,
        node_cluster.base_image,
        "print(open('/s/value').read())",
        container={"volumeMounts": [{"name": "s", "mountPath": "/s"}]},
        volumes=[{"name": "s", "secret": {"secretName": "s"}}],
    )
    phase, logs = _run_pod(node_cluster, pod)
    assert phase == "Succeeded", logs
    assert logs.strip() == canary


def test_a_pod_reaches_the_api_in_cluster(node_cluster: Any) -> None:
    """What an in-cluster client (the operator) does: the `kubernetes` Service's address from
    the environment, the ServiceAccount token and CA from the projected volume."""
    ns = new_namespace(node_cluster)
    script = """
import json, os, ssl, urllib.request
sa = '/var/run/secrets/kubernetes.io/serviceaccount'
host, port = os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT']
ctx = ssl.create_default_context(cafile=sa + '/ca.crt')
token = open(sa + '/token').read()
ns = open(sa + '/namespace').read()
def get(path):
    req = urllib.request.Request(f'https://{host}:{port}{path}',
                                 headers={'Authorization': 'Bearer ' + token})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
print(json.dumps({'host': host, 'version': get('/version'),
                  'ns': ns, 'pods': get(f'/api/v1/namespaces/{ns}/pods')[0]}))
"""
    phase, logs = _run_pod(node_cluster, _pod("api", ns, node_cluster.base_image, script))
    assert phase == "Succeeded", logs
    out = json.loads(logs)
    assert out["host"] == "10.0.0.1"  # the ClusterIP, through kube-proxy
    assert out["version"][0] == 200
    assert out["version"][1]["gitVersion"] == "v1.34.4"
    assert out["ns"] == ns
    assert out["pods"] == 403  # authenticated as the default ServiceAccount, which may not list


def test_a_deployment_rolls_out_and_a_service_balances_it(node_cluster: Any) -> None:
    ns = new_namespace(node_cluster)
    server = (
        "import http.server, socket\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "        self.wfile.write(socket.gethostname().encode())\n"
        "http.server.HTTPServer(('', 8080), H).serve_forever()\n"
    )
    labels = {"app": "web"}
    apply(
        node_cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": _pod("x", ns, node_cluster.base_image, server)["spec"]
                    | {"restartPolicy": "Always"},
                },
            },
        },
    )
    apply(
        node_cluster,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    node_cluster.kubectl("rollout", "status", "-n", ns, "deploy/web", "--timeout=120s", timeout=150)
    client = (
        "import os, urllib.request\n"
        "seen = set()\n"
        "for _ in range(40):\n"
        "    url = 'http://' + os.environ['WEB_SERVICE_HOST'] + '/'\n"
        "    seen.add(urllib.request.urlopen(url, timeout=5).read().decode())\n"
        "print(len(seen))\n"
    )
    phase, logs = _run_pod(node_cluster, _pod("client", ns, node_cluster.base_image, client))
    assert phase == "Succeeded", logs
    assert logs.strip() == "2"


def test_pod_traffic_cannot_leave_the_machine(node_cluster: Any) -> None:
    if node_cluster.control_plane is None:
        pytest.skip("checks the local node's rules")
    save = subprocess.run(
        ["iptables-save", "-t", "mangle"], capture_output=True, text=True, check=True
    ).stdout
    forward = [line for line in save.splitlines() if line.startswith("-A FORWARD")]
    assert forward[0] == "-A FORWARD -j KUSTOS-NODE-FORWARD"  # mangle: before any filter rule
    ours = [line for line in save.splitlines() if line.startswith("-A KUSTOS-NODE-FORWARD")]
    assert ours[0] == "-A KUSTOS-NODE-FORWARD -i kustos0 -o kustos0 -j RETURN"
    assert "-A KUSTOS-NODE-FORWARD -i kustos0 -j DROP" in ours
    assert "-A KUSTOS-NODE-FORWARD -o kustos0 -j DROP" in ours
    assert not host_state()["link_local_v4"]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _service_ip(cluster: Any, name: str, ns: str) -> str:
    service = get(cluster, "service", name, ns)
    assert service is not None, f"no Service {ns}/{name}"
    return str(service["spec"]["clusterIP"])


# What a pod's resolver was given, and how it answers: printed as JSON by each DNS test's pod.
_RESOLVER = """
import json, socket
conf = open('/etc/resolv.conf').read().split('\\n')
def lines(word):
    return [l.split()[1:] for l in conf if l.startswith(word + ' ')]
def lookup(name):
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)})
    except socket.gaierror as e:
        return 'gaierror %d' % e.errno
"""


def test_a_pod_calls_the_api_by_its_dns_name(node_cluster: Any) -> None:
    """Cluster DNS: the standard resolv.conf (the kube-dns ClusterIP, the cluster's search
    domains), `kubernetes.default.svc` resolves to the `kubernetes` Service, and an HTTPS call
    by that name verifies the apiserver's certificate against the ServiceAccount's CA and is
    authenticated as the pod's ServiceAccount (SelfSubjectReview)."""
    ns = new_namespace(node_cluster)
    script = (
        _RESOLVER
        + """
import ssl, urllib.request
sa = '/var/run/secrets/kubernetes.io/serviceaccount'
ctx = ssl.create_default_context(cafile=sa + '/ca.crt')  # verifies the name too
req = urllib.request.Request(
    'https://kubernetes.default.svc/apis/authentication.k8s.io/v1/selfsubjectreviews',
    data=json.dumps({'apiVersion': 'authentication.k8s.io/v1', 'kind': 'SelfSubjectReview'}).encode(),
    headers={'Authorization': 'Bearer ' + open(sa + '/token').read(),
             'Content-Type': 'application/json'})
with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
    review = json.load(r)
print(json.dumps({'nameservers': lines('nameserver'), 'search': lines('search'),
                  'options': lines('options'), 'api': lookup('kubernetes.default.svc'),
                  'user': review['status']['userInfo']['username']}))
"""
    )
    phase, logs = _run_pod(node_cluster, _pod("dns-api", ns, node_cluster.base_image, script))
    assert phase == "Succeeded", logs
    out = json.loads(logs)
    assert out["nameservers"] == [[_service_ip(node_cluster, "kube-dns", "kube-system")]]
    assert out["search"] == [[f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local"]]
    assert ["ndots:5"] in out["options"]
    assert out["api"] == [_service_ip(node_cluster, "kubernetes", "default")]
    assert out["user"] == f"system:serviceaccount:{ns}:default"


def test_a_service_name_resolves_to_its_cluster_ip_and_answers(node_cluster: Any) -> None:
    ns = new_namespace(node_cluster)
    server = (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'hello')\n"
        "http.server.HTTPServer(('', 8080), H).serve_forever()\n"
    )
    labels = {"app": "hello"}
    web = _pod("hello", ns, node_cluster.base_image, server, restartPolicy="Always")
    web["metadata"]["labels"] = labels
    web["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 1,
    }
    apply(node_cluster, web)
    apply(
        node_cluster,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "hello", "namespace": ns},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    node_cluster.kubectl("wait", "-n", ns, "pod/hello", "--for=condition=Ready", "--timeout=120s")
    fqdn = f"hello.{ns}.svc.cluster.local"
    client = (
        _RESOLVER
        + f"""
import urllib.request
body = urllib.request.urlopen('http://{fqdn}/', timeout=10).read().decode()
print(json.dumps({{'fqdn': lookup('{fqdn}'), 'short': lookup('hello'),
                  'other_ns': lookup('hello.default.svc.cluster.local'), 'body': body}}))
"""
    )
    phase, logs = _run_pod(node_cluster, _pod("client", ns, node_cluster.base_image, client))
    assert phase == "Succeeded", logs
    out = json.loads(logs)
    ip = _service_ip(node_cluster, "hello", ns)
    assert out["fqdn"] == [ip]
    assert out["short"] == [ip]  # through the namespace's search domain
    assert out["other_ns"].startswith("gaierror")  # no such Service in `default`
    assert out["body"] == "hello"


def test_a_name_outside_the_cluster_is_refused_and_no_query_leaves_the_machine(
    node_cluster: Any,
) -> None:
    """CoreDNS answers only cluster.local: `example.com` does not resolve, the DNS server
    itself answers REFUSED at once (a forwarder would answer from upstream, or SERVFAIL after
    its timeout), the binary has no forwarding plugin, and none of its sockets has a peer
    off this machine."""
    cp = node_cluster.control_plane
    if cp is None:
        pytest.skip("the local node's DNS; other clusters forward outside names upstream")
    ns = new_namespace(node_cluster)
    script = (
        _RESOLVER
        + """
import random, struct, time
server = lines('nameserver')[0][0]
qid = random.randrange(1 << 16)
name = b''.join(bytes([len(p)]) + p for p in b'example.com'.split(b'.')) + b'\\0'
query = struct.pack('>6H', qid, 0x0100, 1, 0, 0, 0) + name + struct.pack('>2H', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
t0 = time.monotonic()
s.sendto(query, (server, 53))
reply = s.recv(4096)
rid, flags, _qd, answers = struct.unpack('>4H', reply[:8])
print(json.dumps({'lookup': lookup('example.com'), 'same_id': rid == qid,
                  'rcode': flags & 0xF, 'answers': answers,
                  'seconds': time.monotonic() - t0}))
"""
    )
    phase, logs = _run_pod(node_cluster, _pod("outside", ns, node_cluster.base_image, script))
    assert phase == "Succeeded", logs
    out = json.loads(logs)
    assert out["lookup"].startswith("gaierror")
    assert out["same_id"]
    assert (out["rcode"], out["answers"]) == (5, 0)  # REFUSED, by CoreDNS itself
    assert out["seconds"] < 1

    state = json.loads((Path(cp.state_dir) / "state.json").read_text())
    binary = Path(state["dns_bin_dir"]) / "coredns"
    plugins = subprocess.run(
        [str(binary), "-plugins"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "kubernetes" in plugins
    assert not {"forward", "grpc", "proxy", "etcd", "secondary"} & set(plugins), plugins
    sockets = subprocess.run(
        ["ss", "-Htuanp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    pid = state["pids"]["coredns"]
    mine = [line.split() for line in sockets if f"pid={pid}," in line]
    assert mine, "CoreDNS has no sockets?"
    # Loopback, the pod range (the apiserver is on its gateway), the Service range.
    local = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "10.244.0.0/24", "10.0.0.0/24")]
    for fields in mine:
        peer = fields[5].rsplit(":", 1)[0].strip("[]")
        if peer == "*":
            continue  # a listener
        address = ipaddress.ip_address(peer.split("%")[0])
        assert address.is_unspecified or any(address in n for n in local), fields


def test_cluster_down_undoes_every_host_change_and_up_works_again(node_cluster: Any) -> None:
    """Runs last in this module: stop the shared node, compare, start it again."""
    cp = node_cluster.control_plane
    if cp is None:
        pytest.skip("stops and starts the local node")
    baseline = node_cluster.host_baseline
    assert baseline is not None
    pids = json.loads((Path(cp.state_dir) / "state.json").read_text())["pids"]
    # Keeping the node lock: no other run's node may start before the comparison (and the
    # restart does not wait for the other runs that queue for the machine).
    cp.down(keep_lock=True)
    try:
        after = host_state()
        running = [name for name, pid in pids.items() if _alive(pid) and name != "node-lock"]
        assert not running, f"still running: {running}"  # coredns among them
        # Nothing the node added is left. (What a killed earlier run left behind may be
        # cleaned up too, so `after` can hold less than the baseline, never more.)
        for key in ("rules", "chains", "links", "kubepods", "mounts", "netns"):
            left = sorted(set(after[key] or []) - set(baseline[key] or []))
            assert not left, f"{key} left behind: {left}"
        assert after["sysctls"] == baseline["sysctls"]
        assert after["link_local_v4"] == baseline["link_local_v4"]
        assert not Path(cp.state_dir).exists()
    finally:
        node_cluster.restart()  # the e2e modules after this one use the node too
    test_the_node_is_ready_without_taints(node_cluster)
