"""GetSecretValue from a pod through the Kustos Service, side by side with GET of a native
Secret from the same pod through the kube-apiserver's Service, on the project's node.

    .venv/bin/python bench/pod_load.py [--seconds 10] [--concurrency 1 8 32 128]
        [--api-processes 1 2] [--json out.json]

Starts a private cluster with a node (or uses $KUSTOS_TEST_KUBECONFIG), builds the Kustos
image from the Dockerfile and installs it as users do (`kubectl apply -k
manifests/overlays/sqlite`), then runs a load pod (`bench/pod/Dockerfile`: wrk) under its
own ServiceAccount. Both servers get the same closed-loop load from wrk in that pod, one
keep-alive connection per unit of concurrency, each request authenticated by the server with
a token of the pod's ServiceAccount:
- Kustos: POST GetSecretValue to the `kustos-api` Service's ClusterIP, a bearer token with
  audience `kustos` (TokenReview, cached), authorized by a SecretAccessPolicy, decrypted
  from the store and audited (fsync'd) before the answer;
- the kube-apiserver: GET of a native Secret through the `kubernetes` Service, a bearer
  token with the default audience, RBAC-authorized (a Role for that one Secret).
Runs alternate between the two at each concurrency, so both share the machine's state. With
several --api-processes values, the operator is set to each (`KUSTOS_API_PROCESSES`) in
turn and measured again. CPU per request is the operator pod's processes' user+system time
(from /proc, found by the pod's cgroup) over the run divided by the answers it gave.
Not a test: run on demand, on a quiet machine; it holds the machine's node lock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.wrk import lua_script, parse_wrk, wrk_argv  # noqa: E402

OVERLAY = REPO / "manifests" / "overlays" / "sqlite"
SYSTEM = "kustos-system"
NS = "bench-pod"
LOADER = "loader"
IMAGE = "kustos-bench-wrk:0.1.0"


def _pod_cpu(uid: str) -> float:
    """User + system CPU seconds of the processes in the pod with this UID (its cgroup)."""
    marker = uid.replace("-", "_")
    total = 0.0
    for cgroup in Path("/proc").glob("[0-9]*/cgroup"):
        try:
            text = cgroup.read_text()
            if uid not in text and marker not in text:
                continue
            fields = (cgroup.parent / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:13])
    return total / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, cluster: Any, workdir: Path) -> None:
        self.cluster, self.workdir = cluster, workdir

    def kubectl(self, *args: str, **kw: Any) -> str:
        return str(self.cluster.kubectl(*args, **kw).stdout)

    def install(self, images: Any) -> None:
        archive, _ = images.build_kustos(self.workdir / "kustos.tar", self.workdir)
        self.cluster.load_image(archive)
        self.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(OVERLAY), timeout=120)
        self.rollout()
        loader, _ = images.build_example(
            REPO / "bench" / "pod",
            f"docker.io/library/{IMAGE}",
            self.workdir / "wrk.tar",
            self.workdir,
            "wrk",
        )
        self.cluster.load_image(loader)

    def rollout(self) -> None:
        self.kubectl(
            "-n",
            SYSTEM,
            "rollout",
            "status",
            "deploy/kustos-operator",
            "--timeout=300s",
            timeout=330,
        )

    def operator_pod(self) -> tuple[str, str]:
        pods = json.loads(
            self.kubectl(
                "-n",
                SYSTEM,
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/name=kustos-operator",
                "-o",
                "json",
            )
        )["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        assert len(live) == 1, [p["metadata"]["name"] for p in live]
        return live[0]["metadata"]["name"], live[0]["metadata"]["uid"]

    def world(self) -> None:
        """The namespace, the loader's ServiceAccount, a ManagedSecret and its policy, a
        native Secret with the same keys and a Role to GET it, and the load pod."""
        from tests.kube_helpers import apply, managed_secret, ready, wait_for

        self.kubectl("create", "namespace", NS)
        self.kubectl("-n", NS, "create", "serviceaccount", LOADER)
        spec = {"name": "bench/db", "generate": {"passwordLength": 32, "keys": ["password"]}}
        apply(self.cluster, managed_secret("bench-db", NS, spec))
        obj = wait_for(lambda: ready(self.cluster, "bench-db", NS), timeout=120, what="Ready")
        self.arn = obj["status"]["arn"]
        apply(
            self.cluster,
            {
                "apiVersion": "kustos.io/v1alpha1",
                "kind": "SecretAccessPolicy",
                "metadata": {"name": LOADER, "namespace": NS},
                "spec": {
                    "subjects": [{"kind": "ServiceAccount", "name": LOADER}],
                    "policy": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "secretsmanager:GetSecretValue",
                                "Resource": self.arn,
                            }
                        ],
                    },
                },
            },
        )
        self.kubectl(
            "-n",
            NS,
            "create",
            "secret",
            "generic",
            "native",
            "--from-literal=username=app",
            f"--from-literal=password={'x' * 32}",
        )
        self.kubectl(
            "-n",
            NS,
            "create",
            "role",
            "read-native",
            "--verb=get",
            "--resource=secrets",
            "--resource-name=native",
        )
        self.kubectl(
            "-n",
            NS,
            "create",
            "rolebinding",
            "read-native",
            "--role=read-native",
            f"--serviceaccount={NS}:{LOADER}",
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": LOADER, "namespace": NS},
            "spec": {
                "serviceAccountName": LOADER,
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 0,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                "containers": [
                    {
                        "name": "wrk",
                        "image": IMAGE,
                        "imagePullPolicy": "Never",
                        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                    }
                ],
                "volumes": [{"name": "work", "emptyDir": {}}],
            },
        }
        apply(self.cluster, pod)
        self.kubectl(
            "-n",
            NS,
            "wait",
            "--for=condition=Ready",
            f"pod/{LOADER}",
            "--timeout=120s",
            timeout=150,
        )

    def targets(self) -> dict[str, dict[str, Any]]:
        def cluster_ip(ns: str, name: str) -> str:
            return self.kubectl("-n", ns, "get", "svc", name, "-o", "jsonpath={.spec.clusterIP}")

        def token(audience: str | None) -> str:
            extra = [f"--audience={audience}"] if audience else []
            return self.kubectl(
                "-n", NS, "create", "token", LOADER, "--duration=2h", *extra
            ).strip()

        return {
            "kustos": {
                "url": f"https://{cluster_ip(SYSTEM, 'kustos-api')}:8443/",
                "method": "POST",
                "body": json.dumps({"SecretId": self.arn}).encode(),
                "headers": {
                    "Content-Type": "application/x-amz-json-1.1",
                    "X-Amz-Target": "secretsmanager.GetSecretValue",
                    "Authorization": f"Bearer {token('kustos')}",
                },
            },
            "apiserver": {
                "url": f"https://{cluster_ip('default', 'kubernetes')}:443"
                f"/api/v1/namespaces/{NS}/secrets/native",
                "method": "GET",
                "body": b"",
                "headers": {"Authorization": f"Bearer {token(None)}", "Accept": "application/json"},
            },
        }

    def put_scripts(self, targets: dict[str, dict[str, Any]]) -> None:
        for name, t in targets.items():
            script = lua_script(t["method"], t["headers"], t["body"])
            self.kubectl(
                "-n",
                NS,
                "exec",
                "-i",
                LOADER,
                "--",
                "/bin/sh",
                "-c",
                f"cat > /work/{name}.lua",
                input=script,
            )

    def run(self, name: str, url: str, c: int, seconds: float) -> dict[str, float]:
        argv = wrk_argv(url, f"/work/{name}.lua", c, seconds, threads=min(2, c))
        proc = self.cluster.kubectl(
            "-n", NS, "exec", LOADER, "--", *argv, check=False, timeout=seconds + 90
        )
        return parse_wrk(proc.stdout, proc.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--api-processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", default="", help="write every figure to this file")
    args = parser.parse_args()

    from tests import cluster_fixture as cf

    kubeconfig = cf.ensure_node_cluster()
    cluster = cf.NodeCluster(
        kubeconfig=kubeconfig, kubectl_path=cf._kubectl_binary(), control_plane=cf._private_node
    )
    images = cf._controlplane_module().images_module()
    bench = Bench(cluster, Path(tempfile.mkdtemp(prefix="kustos-bench-pod-")))
    started = time.monotonic()
    bench.install(images)
    bench.world()
    targets = bench.targets()
    bench.put_scripts(targets)
    print(f"installed in {time.monotonic() - started:.0f}s")
    results: list[dict[str, Any]] = []
    load_avg = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} CPUs, {args.seconds:.0f}s per run, load average at start "
        f"{load_avg:.1f}; wrk in a pod, bearer tokens of its ServiceAccount on both sides\n"
    )
    print(
        "| API processes | concurrency | Kustos rps | p50 ms | p99 ms | CPU ms/req | "
        "apiserver rps | p50 ms | p99 ms | Kustos / apiserver |"
    )
    print("|---" * 10 + "|")
    for processes in args.api_processes:
        bench.kubectl(
            "-n",
            SYSTEM,
            "set",
            "env",
            "deploy/kustos-operator",
            f"KUSTOS_API_PROCESSES={processes}",
        )
        bench.rollout()
        _, uid = bench.operator_pod()
        for name, t in targets.items():  # warm up: connections, token reviews, caches
            bench.run(name, t["url"], 4, 2)
        for c in args.concurrency:
            cpu = _pod_cpu(uid)
            kustos = bench.run("kustos", targets["kustos"]["url"], c, args.seconds)
            kustos["cpu_ms"] = (_pod_cpu(uid) - cpu) / max(1, kustos["n"]) * 1000
            kube = bench.run("apiserver", targets["apiserver"]["url"], c, args.seconds)
            ratio = kustos["rps"] / kube["rps"] if kube["rps"] else 0.0
            errors = (
                f" (errors: {kustos['errors']:.0f}/{kube['errors']:.0f})"
                if (kustos["errors"] or kube["errors"])
                else ""
            )
            print(
                f"| {processes} | {c} | {kustos['rps']:.0f} | {kustos['p50']:.1f} | "
                f"{kustos['p99']:.1f} | {kustos['cpu_ms']:.2f} | {kube['rps']:.0f} | "
                f"{kube['p50']:.1f} | {kube['p99']:.1f} | {ratio:.2f}{errors} |",
                flush=True,
            )
            results.append(
                {"processes": processes, "concurrency": c, "kustos": kustos, "apiserver": kube}
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load_avg, "results": results}, indent=2))
    # The private cluster (if one was started) stops at exit (`ensure_node_cluster`).


if __name__ == "__main__":
    main()
