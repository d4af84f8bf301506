"""The Secrets Manager API served without a cluster: real services, two stand-ins.

`build_services` wires the real request path as `Services` does -- SqlStore on a SQLite file,
keyring, AccessService (SigV4 keys and bearer tokens), PolicyIndex, AuditService with group
commit, SecretsApi -- with the cluster replaced by a policy source returning one allow-all
SecretAccessPolicy and a token reviewer accepting one token (`TOKEN`). `serve` runs the real
aiohttp app on it (plain HTTP, SO_REUSEPORT), as a process of its own:

    python tests/local_api.py STORE PORT [0|1 audit]

The policies in force are those of `<store>.policies.json` when that file exists (a test
edits it to remove a policy), else the allow-all one. Used by tests that need several server
processes on one store (tests/integration/
test_api_replicas.py) and by bench/api_local.py. Reads and store-level writes only: the
ManagedSecret gateways are absent, so API writes are not served.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, cast

TOKEN = "bench-token-" + "x" * 40  # a stand-in the fake reviewer accepts
NAMESPACE = "bench"
POLICY: dict[str, Any] = {
    "metadata": {"name": "all", "namespace": NAMESPACE, "uid": "u1", "resourceVersion": "1"},
    "spec": {
        "subjects": [{"kind": "ServiceAccount", "name": "app"}],
        "policy": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}],
        },
    },
}


def build_services(store_path: Path, *, audit: bool = True) -> Any:
    """(backend, extras) wired as `Services` does, with the cluster stood in for."""
    from kustos.api.server import ApiBackend
    from kustos.crypto import Keyring
    from kustos.kube.access import TokenReviewResult
    from kustos.kube.managed_objects import ManagedObjectGateway
    from kustos.kube.secrets import SecretGateway
    from kustos.models.nonblocking import must_not_block
    from kustos.services.access.authorize import AccessService
    from kustos.services.access.keys import AccessKeyService
    from kustos.services.access.policies import PolicyIndex
    from kustos.services.access.revocations import RevocationList
    from kustos.services.access.tokens import TokenAuthenticator
    from kustos.services.api.service import SecretsApi
    from kustos.services.audit.service import AuditService
    from kustos.services.core.deletion import DeletionService
    from kustos.services.core.secrets import SecretService
    from kustos.store import SqlStore
    from kustos.store.access_keys import AccessKeyStore
    from kustos.store.audit import AuditStore
    from kustos.store.revocations import RevocationStore

    keyring_file = store_path.with_suffix(".keyring.json")
    if keyring_file.exists():
        keyring = Keyring.from_secret_data(json.loads(keyring_file.read_text()))
    else:
        keyring = Keyring.generate()
        keyring_file.write_text(json.dumps(keyring.to_secret_data()))
    store = SqlStore(f"sqlite:///{store_path}")

    class Reviewer:
        def review_token(self, token: str, audiences: list[str]) -> TokenReviewResult:
            must_not_block("a TokenReview")  # a Kubernetes request in the product
            if token != TOKEN:
                return TokenReviewResult(False, error="invalid")
            return TokenReviewResult(
                True,
                f"system:serviceaccount:{NAMESPACE}:app",
                "uid-1",
                ("system:serviceaccounts",),
                tuple(audiences),
            )

    revocations = RevocationList(RevocationStore(store.engine).all)
    keys = AccessKeyService(AccessKeyStore(store.engine), lambda: keyring, revocations=revocations)
    policy_file = store_path.with_suffix(".policies.json")

    def policies() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The policies "in the cluster": `<store>.policies.json` if present (tests edit
        it), else the allow-all POLICY."""
        must_not_block("listing policies")  # a Kubernetes request in the product
        if policy_file.exists():
            return json.loads(policy_file.read_text()), []
        return [POLICY], []

    access = AccessService(
        TokenAuthenticator(Reviewer()),
        keys,
        PolicyIndex(policies),
        region="test",
        revocations=revocations,
    )
    secrets = SecretService(store, lambda: keyring, "test")

    class NoAudit:
        """Records nothing (for `--no-audit` A/B runs), on the same request paths as the
        real log: a warm GetSecretValue is still answered on the event loop."""

        first_wait_seconds = 1.0

        def record(self, event: Any) -> None:
            return None

        def submit(self, events: Any, on_done: Any) -> None:
            on_done()

        def keep_waiting(self, ticket: Any) -> bool:
            return False

        def settled(self, ticket: Any) -> bool:
            return True

        def settle(self, ticket: Any) -> None:
            return None

    sink: Any = (
        AuditService(AuditStore(store.engine), "test", lambda: keyring) if audit else NoAudit()
    )
    api = SecretsApi(
        secrets,
        cast(ManagedObjectGateway, None),  # absent: API writes are not served
        cast(SecretGateway, None),
        access,
        sink,
        cast(DeletionService, None),
    )
    return ApiBackend(access, api), {
        "store": store,
        "keys": keys,
        "secrets": secrets,
        "audit": sink,
    }


def prepare(store_path: Path) -> dict[str, str]:
    """One secret and one access key in a fresh store; returns what the clients need."""
    from kustos.models.sensitive import SecretValue

    _, extra = build_services(store_path)
    record = extra["secrets"].create(NAMESPACE, "bench/db", object_name="bench-db")
    extra["secrets"].add_version(
        record, SecretValue(json.dumps({"username": "app", "password": "x" * 32}))
    )
    issued = extra["keys"].create(NAMESPACE, "app")
    extra["audit"].close()
    extra["store"].close()
    return {
        "arn": record.arn,
        "akid": issued.record.access_key_id,
        "secret": issued.secret_access_key.reveal(),
    }


def serve(store_path: Path, port: int, audit: bool) -> None:
    """One server process (SO_REUSEPORT, so several share the port)."""
    import asyncio

    from aiohttp import web

    from kustos.api.server import build_app, tune_interpreter

    backend, extra = build_services(store_path, audit=audit)

    async def main() -> None:
        runner = web.AppRunner(build_app(backend), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=1024).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        # The product's graceful shutdown (kustos.cli.api_cmd.drain): not ready, serve on
        # for $KUSTOS_API_DRAIN_SECONDS (default 0 here), finish in-flight, stop.
        from kustos.cli.api_cmd import drain

        await drain(runner, float(os.environ.get("KUSTOS_API_DRAIN_SECONDS", "0")))

    tune_interpreter()
    from kustos.cli.loops import runner

    with runner() as loop_runner:  # the product's loop
        loop_runner.run(main())
    if hasattr(extra["audit"], "close"):
        extra["audit"].close()
    extra["store"].close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, body: bytes) -> None:
    """Until the server at `port` answers GetSecretValue with 200 (a starting process on a
    loaded 2-CPU machine can take tens of seconds to import its dependencies)."""
    deadline = time.monotonic() + 180
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("POST", "/", body=body, headers=bearer_headers())
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return
            raise RuntimeError(f"server answered {resp.status}")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def bearer_headers() -> dict[str, str]:
    return {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "secretsmanager.GetSecretValue",
    }


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:] != ["0"])
