"""Time per GetSecretValue call from each AWS SDK against Kustos: boto3, and the AWS SDKs for
JavaScript v3, Go v2 and Java 2.x (p50 and p90 over 100 sequential calls, after 10 warm-up
calls, one client and one keep-alive connection each, SigV4 with a Kustos access key).

    .venv/bin/python bench/sdk_calls.py [--calls 100]
    .venv/bin/python bench/sdk_calls.py --endpoint URL --region R --secret-id ID \
        [--ca-bundle PEM]      # a running Kustos; AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY

Without --endpoint it starts a private control plane (or uses $KUSTOS_TEST_KUBECONFIG) and
the real operator serving the API over TLS, as bench/api_load.py does. The SDKs come from
tests.sdk.toolchains (cached under ~/.cache/kustos/sdk); the programs are bench/sdk/*. A
language whose toolchain is not installed is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
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


def measure(
    endpoint: str,
    region: str,
    ca: Path | None,
    key: tuple[str, str],
    secret_id: str,
    calls: int,
    workdir: Path,
) -> list[tuple[str, str]]:
    import boto3
    from tests.sdk import toolchains
    from tests.sdk.programs import SdkEndpoint, env_for, run_program

    client = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        verify=str(ca) if ca else None,
    )
    times = []
    for i in range(10 + calls):
        start = time.perf_counter()
        client.get_secret_value(SecretId=secret_id)
        if i >= 10:
            times.append((time.perf_counter() - start) * 1000)
    rows = [("boto3 (Python)", summary(times))]
    target = SdkEndpoint(
        endpoint, ca or Path("/etc/ssl/certs/ca-certificates.crt"), region, access_key=key
    )
    for lang, program in PROGRAMS.items():
        tool = toolchains.missing(lang)
        if tool is not None:
            rows.append((lang, f"skipped: {tool} not installed | "))
            continue
        chain = toolchains.prepare(lang)
        source = (REPO / "bench" / "sdk" / program).read_text()
        cmd = chain.build(source, workdir / lang)
        env = env_for(lang, target, dict(chain.env()))
        env.update(BENCH_SECRET_ID=secret_id, BENCH_CALLS=str(calls))
        proc = run_program(cmd, env, workdir / lang, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"{lang}: {proc.stderr}")
        rows.append(
            (
                f"{lang} ({toolchains.PINS[lang]})",
                summary(json.loads(proc.stdout.strip().splitlines()[-1])),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--endpoint")
    parser.add_argument("--region", default="test")
    parser.add_argument("--secret-id", default="bench/sdk")
    parser.add_argument("--ca-bundle", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kustos-bench-sdk-"))
    if args.endpoint:
        key = (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        rows = measure(
            args.endpoint, args.region, args.ca_bundle, key, args.secret_id, args.calls, workdir
        )
    else:
        from tests.api_fixture import start_api_world
        from tests.cluster_fixture import KubeCluster, _kubectl_binary, ensure_cluster
        from tests.kube_helpers import new_namespace

        cluster = KubeCluster(ensure_cluster(), _kubectl_binary())
        cluster.apply_crds()
        world = start_api_world(cluster, workdir)
        try:
            ident = world.identity(new_namespace(cluster, "bench"))
            world.client(ident).create_secret(
                Name=args.secret_id,
                SecretString=json.dumps({"username": "app", "password": "x" * 32}),
            )
            rows = measure(
                world.endpoint,
                "test",
                world.ca_path,
                (ident.access_key_id, ident.secret_access_key),
                args.secret_id,
                args.calls,
                workdir,
            )
        finally:
            world.runner.stop()
    print(f"GetSecretValue, {args.calls} sequential calls after 10 warm-up calls")
    print("| SDK | p50 ms | p90 ms |\n|---|---|---|")
    for name, cells in rows:
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
