"""Time per GetSecretValue call from each AWS SDK against Kustos: boto3, and the AWS SDKs for
JavaScript v3, Go v2 and Java 2.x (p50 and p90 over 100 sequential calls, after 10 warm-up
calls, one client and one keep-alive connection each, SigV4 with a Kustos access key).

    .venv/bin/python bench/sdk_calls.py [--calls 100]

Starts a private control plane (or uses $KUSTOS_TEST_KUBECONFIG) and the real operator serving
the API over TLS, as bench/api_load.py does. The SDKs come from tests.sdk.toolchains (cached
under ~/.cache/kustos/sdk); the programs are bench/sdk/*. A language whose toolchain is not
installed is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PROGRAMS = {"javascript": "bench.mjs", "go": "bench.go", "java": "GetKustosSecret.java"}


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return f"{statistics.median(ordered):.2f} | {p90:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()

    from tests.api_fixture import start_api_world
    from tests.cluster_fixture import KubeCluster, _kubectl_binary, ensure_cluster
    from tests.kube_helpers import new_namespace
    from tests.sdk import toolchains
    from tests.sdk.programs import SdkEndpoint, env_for, run_program

    cluster = KubeCluster(ensure_cluster(), _kubectl_binary())
    cluster.apply_crds()
    workdir = Path(tempfile.mkdtemp(prefix="kustos-bench-sdk-"))
    world = start_api_world(cluster, workdir)
    try:
        ident = world.identity(new_namespace(cluster, "bench"))
        client = world.client(ident)
        client.create_secret(Name="bench/sdk", SecretString=json.dumps(
            {"username": "app", "password": "x" * 32}))
        rows = []
        times = []
        for i in range(10 + args.calls):
            start = time.perf_counter()
            client.get_secret_value(SecretId="bench/sdk")
            if i >= 10:
                times.append((time.perf_counter() - start) * 1000)
        rows.append(("boto3 (Python)", summary(times)))
        target = SdkEndpoint(world.endpoint, world.ca_path, "test",
                             access_key=(ident.access_key_id, ident.secret_access_key))
        for lang, program in PROGRAMS.items():
            tool = toolchains.missing(lang)
            if tool is not None:
                rows.append((lang, f"skipped: {tool} not installed | "))
                continue
            chain = toolchains.prepare(lang)
            source = (REPO / "bench" / "sdk" / program).read_text()
            cmd = chain.build(source, workdir / lang)
            env = env_for(lang, target, dict(chain.env()))
            env.update(BENCH_SECRET_ID="bench/sdk", BENCH_CALLS=str(args.calls))
            proc = run_program(cmd, env, workdir / lang, timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"{lang}: {proc.stderr}")
            rows.append((f"{lang} ({toolchains.PINS[lang]})",
                         summary(json.loads(proc.stdout.strip().splitlines()[-1]))))
        print(f"GetSecretValue, {args.calls} sequential calls after 10 warm-up calls")
        print("| SDK | p50 ms | p90 ms |\n|---|---|---|")
        for name, cells in rows:
            print(f"| {name} | {cells} |")
    finally:
        world.runner.stop()


if __name__ == "__main__":
    main()
