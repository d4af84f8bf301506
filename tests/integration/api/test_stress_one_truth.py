"""Stress: API writers and kubectl patchers on the same secrets at once, with the operator
restarted in the middle, on the real apiserver.

Two API-only processes (`kustos api`, other processes than the operator, sharing its store)
take the writes and reads; the operator process is restarted while the writers keep going:
gracefully (SIGTERM) during round RESTART_AT and killed (SIGKILL) during round KILL_AT. Per
secret and round, concurrently:
- an API writer: TagResource (tags `api` and `shared`, plus a throwaway tag), UntagResource
  of the throwaway tag, UpdateSecret (Description), each followed by a DescribeSecret on the
  *other* API process, which must show the write (read your writes, across processes);
- a value writer: PutSecretValue, then GetSecretValue on the other process (same rule);
- a kubectl patcher: `kubectl patch ms --type merge` of tags `kubectl` and `shared` (the
  API writer's `shared` races this one: the last write of either may win, but the record
  must then agree with the spec).
At the end of every round, once the operator settles: the spec, the record (DescribeSecret)
and the projected Secret hold the last write of every writer, and no throwaway tag is
left. Every miss is a lost update; the test demands none.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from tests.api_fixture import ApiWorld, Identity
from tests.kube_helpers import get, secret_data, wait_for
from tests.operator_fixture import free_port

# 20 rounds take 2-4 minutes on an idle 2-core machine, up to ~10 under heavy load.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]

ROUNDS = 20
RESTART_AT = 7
KILL_AT = 14
SECRETS = 3
WRITES = 2  # per writer and round


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stale_reads: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    converge: list[float] = field(default_factory=list)

    def note(self, bucket: list[str], what: str) -> None:
        with self.lock:
            bucket.append(what)


@pytest.fixture
def api_pair(world: ApiWorld, ident: Identity) -> Iterator[tuple[Any, Any]]:
    """Two `kustos api` processes on the operator's store: boto3 clients for both."""
    procs, clients = [], []
    for i in range(2):
        port = free_port()
        log = (world.runner.workdir / f"stress-api-{i}.log").open("ab")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "kustos.cli.main", "api", "--port", str(port)],
                env=world.runner.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=world.runner.workdir,
            )
        )
        clients.append(ApiWorld(world.cluster, world.runner, port, world.ca_path).client(ident))
    for client in clients:
        wait_for(partial(_answers, client), timeout=240, what="kustos api answering")
    yield clients[0], clients[1]
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(client: Any) -> bool:
    try:
        client.get_random_password(PasswordLength=8)
    except Exception as exc:
        if "Could not connect" in str(exc) or "Connection" in type(exc).__name__:
            return False  # not listening yet
        if "AccessDenied" in str(exc):
            return False  # its policy index has not loaded the test's policy yet
        raise
    return True


def _restart(world: ApiWorld, kill: bool, tally: Tally) -> None:
    try:
        world.runner.kill() if kill else world.runner.stop()
        world.runner.start(timeout=300)  # a loaded machine starts Python slowly
    except Exception as exc:
        tally.note(tally.errors, f"operator restart: {type(exc).__name__}: {exc}")


def test_concurrent_api_and_kubectl_writers_lose_nothing(
    world: ApiWorld, api_pair: tuple[Any, Any], ns: str
) -> None:
    one, two = api_pair
    cluster = world.cluster
    names = [f"stress/s{i}" for i in range(SECRETS)]
    objects = {}
    for name in names:
        one.create_secret(Name=name, SecretString="v0", Tags=[{"Key": "api", "Value": "t0"}])
        objects[name] = name.replace("/", "-")
    for name in names:

        def projected(n: str = name) -> dict[str, str]:
            return secret_data(get(cluster, "secret", objects[n], ns) or {})

        wait_for(projected, what="first projection")
    tally = Tally()
    kube = Kube(cluster.api_client(), ns)
    for rnd in range(ROUNDS):
        tag_of = {n: f"r{rnd}-t{WRITES - 1}" for n in names}
        desc_of = {n: f"r{rnd}-d{WRITES - 1}" for n in names}
        value_of = {n: f"r{rnd}-v{WRITES - 1}" for n in names}
        kube_of = {n: f"r{rnd}-k{WRITES - 1}" for n in names}
        jobs: list[Callable[[], None]] = []
        for i, name in enumerate(names):
            writer, reader = (one, two) if (rnd + i) % 2 == 0 else (two, one)
            jobs += [
                partial(_api_writer, writer, reader, name, rnd, tally),
                partial(_value_writer, reader, writer, name, rnd, tally),
                partial(_kubectl_patcher, cluster, ns, objects[name], rnd, tally),
            ]
        if rnd in (RESTART_AT, KILL_AT):
            jobs.append(partial(_restart, world, rnd == KILL_AT, tally))
        threads = [threading.Thread(target=job) for job in jobs]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not tally.errors, tally.errors[:5]
        started = time.monotonic()
        wrote = started - began
        for name in names:
            want = {"api": tag_of[name], "kubectl": kube_of[name]}
            shared = {f"r{rnd}-t{WRITES - 1}", f"r{rnd}-k{WRITES - 1}"}
            probe = partial(
                _settled,
                kube,
                one,
                objects[name],
                name,
                want,
                shared,
                desc_of[name],
                value_of[name],
            )
            try:
                wait_for(probe, timeout=60, interval=0.1, what=f"{name} settled in round {rnd}")
            except AssertionError as exc:
                tally.note(tally.lost, f"round {rnd}: {exc}")
        tally.converge.append(time.monotonic() - started)
        restart = " (with the operator's restart)" if rnd in (RESTART_AT, KILL_AT) else ""
        print(
            f"round {rnd}: writers{restart} {wrote:.2f}s, settled {tally.converge[-1]:.2f}s after",
            flush=True,
        )
    assert tally.stale_reads == [], tally.stale_reads[:5]
    assert tally.lost == [], tally.lost[:5]
    assert len(tally.converge) == ROUNDS
    print(
        f"\nstress: {ROUNDS} rounds, {SECRETS} secrets, convergence after the writers: "
        f"max {max(tally.converge):.2f}s, mean {sum(tally.converge) / ROUNDS:.2f}s"
    )


def _api_writer(writer: Any, reader: Any, name: str, rnd: int, tally: Tally) -> None:
    try:
        for i in range(WRITES):
            tag, desc, scratch = f"r{rnd}-t{i}", f"r{rnd}-d{i}", f"scratch-{rnd}-{i}"
            writer.tag_resource(
                SecretId=name,
                Tags=[
                    {"Key": "api", "Value": tag},
                    {"Key": "shared", "Value": tag},
                    {"Key": scratch, "Value": "x"},
                ],
            )
            seen = _tags(reader, name)
            if seen.get("api") != tag or seen.get(scratch) != "x":
                tally.note(tally.stale_reads, f"{name}: wrote tags {tag}/{scratch}, read {seen}")
            writer.untag_resource(SecretId=name, TagKeys=[scratch])
            seen = _tags(reader, name)
            if scratch in seen or seen.get("api") != tag:
                tally.note(tally.stale_reads, f"{name}: untagged {scratch}, read {seen}")
            writer.update_secret(SecretId=name, Description=desc)
            got = reader.describe_secret(SecretId=name).get("Description")
            if got != desc:
                tally.note(tally.stale_reads, f"{name}: wrote description {desc}, read {got}")
    except Exception as exc:
        tally.note(tally.errors, f"api writer {name}: {type(exc).__name__}: {exc}")


def _tags(client: Any, name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in client.describe_secret(SecretId=name).get("Tags", [])}


def _value_writer(writer: Any, reader: Any, name: str, rnd: int, tally: Tally) -> None:
    try:
        for i in range(WRITES):
            value = f"r{rnd}-v{i}"
            writer.put_secret_value(SecretId=name, SecretString=value)
            got = reader.get_secret_value(SecretId=name)["SecretString"]
            if got != value:
                tally.note(tally.stale_reads, f"{name}: put {value}, read {got}")
    except Exception as exc:
        tally.note(tally.errors, f"value writer {name}: {type(exc).__name__}: {exc}")


def _kubectl_patcher(cluster: Any, ns: str, obj: str, rnd: int, tally: Tally) -> None:
    for i in range(WRITES):
        tag = f"r{rnd}-k{i}"
        patch = json.dumps({"spec": {"tags": {"kubectl": tag, "shared": tag}}})
        proc = cluster.kubectl(
            "patch", "ms", obj, "-n", ns, "--type", "merge", "-p", patch, check=False
        )
        if proc.returncode != 0:
            tally.note(tally.errors, f"kubectl patch {obj}: {proc.stderr.strip()}")
            return


class Kube:
    """Reads of the ManagedSecret and its projected Secret through the Python client (a
    kubectl process per probe would cost more CPU than the writers)."""

    def __init__(self, api_client: Any, ns: str) -> None:
        from kubernetes import client

        self.ns = ns
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def spec(self, obj: str) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object(
            "kustos.io", "v1alpha1", self.ns, "managedsecrets", obj
        )
        return dict(body.get("spec") or {})

    def projected(self, obj: str) -> dict[str, str]:
        data = self.core.read_namespaced_secret(obj, self.ns).data or {}
        return secret_data({"data": data})


def _settled(
    kube: Kube,
    client: Any,
    obj: str,
    name: str,
    tags: dict[str, str],
    shared: set[str],
    description: str,
    value: str,
) -> bool:
    """The spec, the record and the projected Secret hold the last writes (`shared`: the
    last write of either of the two writers of tag `shared`, the same in spec and record)."""
    spec = kube.spec(obj)
    described = client.describe_secret(SecretId=name)
    record_tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
    projected = kube.projected(obj)
    spec_tags = dict(spec.get("tags") or {})
    assert spec_tags.get("shared") in shared, f"spec tag shared {spec_tags.get('shared')}"
    tags = {**tags, "shared": spec_tags["shared"]}
    assert spec_tags == tags, f"spec tags {spec_tags} != {tags}"
    assert spec.get("description") == description, f"spec description {spec.get('description')}"
    assert record_tags == tags, f"record tags {record_tags} != {tags}"
    assert described.get("Description") == description, "record description"
    assert client.get_secret_value(SecretId=name)["SecretString"] == value, "stored value"
    assert projected == {"value": value}, f"projected {projected} != {value}"
    return True
