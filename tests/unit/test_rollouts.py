"""Restarts on change: which workloads, once per debounce window, under a cluster-wide rate
limit, never when the data did not change. A fake clock and a fake workload gateway."""

from __future__ import annotations

import json
from typing import Any

from kustos.services.consumers.rollouts import (
    MARKER,
    RolloutCoordinator,
    RolloutLimits,
    WorkloadRef,
    secret_use,
    wants_restart,
)


def workload(
    name: str,
    *,
    kind: str = "Deployment",
    env: tuple[str, ...] = (),
    env_from: tuple[str, ...] = (),
    volumes: tuple[str, ...] = (),
    projected: tuple[str, ...] = (),
    init_env: tuple[str, ...] = (),
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    container = {
        "name": "app",
        "env": [
            {"name": f"V{i}", "valueFrom": {"secretKeyRef": {"name": s, "key": "k"}}}
            for i, s in enumerate(env)
        ],
        "envFrom": [{"secretRef": {"name": s}} for s in env_from],
    }
    vols = [{"name": f"v{i}", "secret": {"secretName": s}} for i, s in enumerate(volumes)]
    vols += [
        {"name": f"p{i}", "projected": {"sources": [{"secret": {"name": s}}]}}
        for i, s in enumerate(projected)
    ]
    init = [
        {
            "name": "init",
            "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": s, "key": "k"}}}
                for s in init_env
            ],
        }
    ]
    return {
        "kind": kind,
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "template": {
                "metadata": {},
                "spec": {"containers": [container], "initContainers": init, "volumes": vols},
            }
        },
    }


OPT_IN = {"kustos.io/restart-on-change": "true"}


class FakeWorkloads:
    def __init__(self, *items: dict[str, Any]) -> None:
        self.items = list(items)
        self.patches: list[tuple[str, str, dict[str, str]]] = []

    def list(self, namespace: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(json.dumps(self.items))
        return found

    def annotate_pod_template(
        self, namespace: str, kind: str, name: str, annotations: dict[str, str]
    ) -> None:
        self.patches.append((kind, name, annotations))
        for item in self.items:
            if (item["kind"], item["metadata"]["name"]) == (kind, name):
                tmeta = item["spec"]["template"].setdefault("metadata", {})
                tmeta.setdefault("annotations", {}).update(annotations)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def coordinator(
    *items: dict[str, Any], **limits: Any
) -> tuple[RolloutCoordinator, FakeWorkloads, Clock]:
    fake, clock = FakeWorkloads(*items), Clock()
    return RolloutCoordinator(fake, RolloutLimits(**limits), clock=clock), fake, clock


# -- selection -----------------------------------------------------------------------------
def test_every_way_a_pod_template_references_a_secret_is_found() -> None:
    assert secret_use(workload("a", env=("db",)), "db").env
    assert secret_use(workload("a", env_from=("db",)), "db").env
    assert secret_use(workload("a", init_env=("db",)), "db").env
    assert secret_use(workload("a", volumes=("db",)), "db").volume
    assert secret_use(workload("a", projected=("db",)), "db").volume
    assert not secret_use(workload("a", env=("other",), volumes=("other",)), "db")


def test_only_workloads_that_opted_in_are_restarted() -> None:
    assert not wants_restart(workload("a", env=("db",)), "db")
    assert wants_restart(workload("a", env=("db",), annotations=OPT_IN), "db")
    assert wants_restart(workload("a", env=("db",)), "db", named=[("Deployment", "a")])
    assert not wants_restart(workload("a", env=("db",)), "db", named=[("StatefulSet", "a")])
    assert not wants_restart(workload("a", env=("x",), annotations=OPT_IN), "db")


def test_volume_users_that_reload_files_are_left_alone_env_users_are_not() -> None:
    reloads = {**OPT_IN, "kustos.io/reloads-files": "true"}
    assert not wants_restart(workload("a", volumes=("db",), annotations=reloads), "db")
    assert wants_restart(workload("a", volumes=("db",), annotations=OPT_IN), "db")
    assert wants_restart(workload("a", volumes=("db",), env=("db",), annotations=reloads), "db")


# -- debounce --------------------------------------------------------------------------------
def test_two_secrets_changed_together_make_one_restart() -> None:
    app = workload("web", env_from=("db", "cache"), annotations=OPT_IN)
    c, fake, clock = coordinator(app, debounce_seconds=10)
    c.secret_changed("shop", "db", "v-db-2")
    clock.now += 4
    c.secret_changed("shop", "cache", "v-cache-2")
    assert c.flush() == []  # the window (opened by the first change) is still open
    clock.now += 6
    assert c.flush() == [WorkloadRef("shop", "Deployment", "web")]
    assert len(fake.patches) == 1
    kind, name, annotations = fake.patches[0]
    assert (kind, name) == ("Deployment", "web")
    assert json.loads(annotations[MARKER]) == {"cache": "v-cache-2", "db": "v-db-2"}
    assert c.flush() == [] and c.pending() == {}


def test_fifty_secrets_one_restart() -> None:
    names = tuple(f"s{i}" for i in range(50))
    c, fake, clock = coordinator(workload("web", env_from=names, annotations=OPT_IN))
    for name in names:
        c.secret_changed("shop", name, f"{name}-v2")
        clock.now += 0.1
    clock.now += 10
    c.flush()
    assert len(fake.patches) == 1
    assert len(json.loads(fake.patches[0][2][MARKER])) == 50


def test_a_change_after_the_window_is_a_second_restart_keeping_the_first_marker() -> None:
    c, fake, clock = coordinator(workload("web", env_from=("db", "cache"), annotations=OPT_IN))
    c.secret_changed("shop", "db", "v2")
    clock.now += 10
    c.flush()
    c.secret_changed("shop", "cache", "c2")
    clock.now += 10
    c.flush()
    assert len(fake.patches) == 2
    assert json.loads(fake.patches[1][2][MARKER]) == {"cache": "c2", "db": "v2"}


def test_no_restart_for_the_version_the_pods_already_run() -> None:
    c, fake, clock = coordinator(workload("web", env_from=("db",), annotations=OPT_IN))
    c.secret_changed("shop", "db", "v2")
    clock.now += 10
    c.flush()
    assert c.secret_changed("shop", "db", "v2") == []  # the marker names it already
    clock.now += 10
    assert c.flush() == [] and len(fake.patches) == 1


def test_only_consumers_that_want_it_are_patched() -> None:
    c, fake, clock = coordinator(
        workload("web", env_from=("db",), annotations=OPT_IN),
        workload("batch", env_from=("db",)),  # did not opt in
        workload(
            "files", volumes=("db",), annotations={**OPT_IN, "kustos.io/reloads-files": "true"}
        ),
        workload("other", env_from=("x",), annotations=OPT_IN),
        workload("ss", kind="StatefulSet", volumes=("db",)),
    )
    chosen = c.secret_changed("shop", "db", "v2", named=[("StatefulSet", "ss")])
    assert sorted(r.name for r in chosen) == ["ss", "web"]
    clock.now += 10
    c.flush()
    assert sorted((k, n) for k, n, _ in fake.patches) == [
        ("Deployment", "web"),
        ("StatefulSet", "ss"),
    ]


# -- rate limit ------------------------------------------------------------------------------
def test_the_cluster_wide_rate_limit_delays_restarts_and_drops_none() -> None:
    apps = [workload(f"w{i}", env_from=("db",), annotations=OPT_IN) for i in range(5)]
    c, fake, clock = coordinator(*apps, max_restarts=2, per_seconds=60)
    c.secret_changed("shop", "db", "v2")
    clock.now += 10
    assert len(c.flush()) == 2
    assert c.flush() == []  # over the limit: they wait
    due = c.next_due()
    assert due is not None and due == clock.now + 60
    clock.now += 60
    assert len(c.flush()) == 2
    clock.now += 60
    assert len(c.flush()) == 1
    assert sorted(n for _, n, _ in fake.patches) == [f"w{i}" for i in range(5)]


def test_a_failed_patch_is_retried_not_lost() -> None:
    c, fake, clock = coordinator(workload("web", env_from=("db",), annotations=OPT_IN))
    from kustos.errors import ServerError

    failures = [ServerError("apiserver unavailable")]
    original = fake.annotate_pod_template

    def flaky(namespace: str, kind: str, name: str, annotations: dict[str, str]) -> None:
        if failures:
            raise failures.pop()
        original(namespace, kind, name, annotations)

    fake.annotate_pod_template = flaky  # type: ignore[method-assign]  # patched for this test
    c.secret_changed("shop", "db", "v2")
    clock.now += 10
    assert c.flush() == []
    assert c.pending() == {WorkloadRef("shop", "Deployment", "web"): {"db": "v2"}}
    clock.now += 5
    assert c.flush() == [WorkloadRef("shop", "Deployment", "web")]


def test_the_marker_is_the_version_id_never_the_value() -> None:
    c, fake, clock = coordinator(workload("web", env_from=("db",), annotations=OPT_IN))
    c.secret_changed("shop", "db", "3f1c-version")
    clock.now += 10
    c.flush()
    assert fake.patches[0][2] == {MARKER: '{"db":"3f1c-version"}'}


# -- the projection tells only about new data ---------------------------------------------
def test_the_projection_reports_only_projections_that_changed_the_data() -> None:
    from tests.unit.fakes import FakeSecrets, stand_in

    from kustos.kube.events import ObjectRef
    from kustos.kube.secrets import SecretGateway
    from kustos.models.sensitive import SecretValue
    from kustos.services.controller.projection import Projection, ProjectionService

    kube = FakeSecrets()
    told: list[Projection] = []
    service = ProjectionService(stand_in(SecretGateway, kube), on_change=told.append)
    owner = ObjectRef("kustos.io/v1alpha1", "ManagedSecret", "shop", "db", "uid-db")

    def project(version: str, value: str) -> None:
        service.project(
            Projection(
                owner,
                "db",
                "Opaque",
                "arn:x",
                version,
                SecretValue.from_mapping({"password": value}),
                {},
                {},
                {},
                restart_on_change=(("Deployment", "web"),),
            )
        )

    project("v1", "a")  # created: pods start with it, nothing to restart
    project("v1", "a")  # unchanged
    assert told == []
    project("v2", "a")  # a new version with the same data
    assert told == []
    project("v3", "b")
    assert [(p.version_id, p.restart_on_change) for p in told] == [("v3", (("Deployment", "web"),))]
    kube.objects[("shop", "db")]["data"] = {"password": "ZWRpdGVk"}  # drift, same version
    project("v3", "b")
    assert len(told) == 1


def test_the_managed_secrets_behind_a_restart_get_an_event() -> None:
    from tests.unit.fakes import FakeEvents

    from kustos.kube.events import ObjectRef

    fake, clock, events = (
        FakeWorkloads(workload("web", env_from=("db", "cache"), annotations=OPT_IN)),
        Clock(),
        FakeEvents(),
    )
    c = RolloutCoordinator(fake, RolloutLimits(), clock=clock, events=events)
    for name in ("db", "cache"):
        c.secret_changed(
            "shop",
            name,
            f"{name}-v2",
            owner=ObjectRef("kustos.io/v1alpha1", "ManagedSecret", "shop", name, f"uid-{name}"),
        )
    clock.now += 10
    c.flush()
    assert events.reasons() == ["WorkloadRestarted", "WorkloadRestarted"]
    assert (
        "restarted Deployment web for Secret cache version cache-v2, Secret db version db-v2"
        in repr(events.emitted)
    )
